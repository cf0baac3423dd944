"""The pretrain code location: a code model trained from scratch (or grown from a checkpoint) on Python.

defs/ingestion (raw_corpus -> clean_corpus) -> defs/processing (tokenizer -> token_shards, 8 static
partitions -> training_dataset) -> defs/model_init (initial_model) -> defs/training (trained_model through
the TrainerResource and Pipes; checkpoints as dynamic partitions) -> defs/evaluation (the blocking gate ->
published_model, registry ``code-lm``: the local LLM of the other locations). Heavy libraries load inside
the assets, never at import.
"""

from reference_arch.common.locations import location_definitions
from reference_arch.common.pools import dead_runs_sensor
from reference_arch.common.resources import trainer_resource
from reference_arch.pretrain import defs as pretrain_defs

# The sensor frees the gpu pool slot of a run whose worker was killed (any location's).
defs = location_definitions(pretrain_defs, sensors=[dead_runs_sensor], resources={"trainer": trainer_resource()})
