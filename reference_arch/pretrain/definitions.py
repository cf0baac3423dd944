"""The pretrain code location: a code model trained from scratch (or grown from a checkpoint) on Python.

raw_corpus -> clean_corpus -> tokenizer -> token_shards (8 static partitions) -> training_dataset ->
initial_model -> trained_model (TrainerResource, Pipes; checkpoints as dynamic partitions of
checkpoints) -> evaluation (blocking gate) -> published_model (registry ``code-lm``, the local LLM
of the other locations). Heavy libraries load inside the assets, never at import.
"""

from reference_arch.common.locations import location_definitions
from reference_arch.common.pools import dead_runs_sensor
from reference_arch.common.resources import trainer_resource
from reference_arch.pretrain.checks import CHECKS
from reference_arch.pretrain.data_assets import clean_corpus, raw_corpus, token_shards, tokenizer, training_dataset
from reference_arch.pretrain.model_assets import checkpoints, evaluation, initial_model, published_model, \
    trained_model

ASSETS = [raw_corpus, clean_corpus, tokenizer, token_shards, training_dataset, initial_model, trained_model,
          checkpoints, evaluation, published_model]

# The sensor frees the gpu pool slot of a run whose worker was killed (any location's).
defs = location_definitions(assets=ASSETS, asset_checks=CHECKS, sensors=[dead_runs_sensor],
                            resources={"trainer": trainer_resource()})
