"""The one error every LLM call raises for a reason the user can act on."""


class LLMError(RuntimeError):
    """A model call failed for a reason the user can act on (the message says which and what to do)."""
