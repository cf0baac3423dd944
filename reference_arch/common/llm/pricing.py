"""The price table (``prices.yaml``, the one file that holds prices): each model's USD per 1M input and
output tokens and its limits, and the cost arithmetic every answer records as ``llm/cost_usd``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PRICES_FILE = Path(__file__).resolve().parent / "prices.yaml"
Task = Literal["short", "long", "code"]


class PriceError(ValueError):
    """The price table cannot be read, or names no such model."""


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    input: float = Field(ge=0)  # USD per 1M input (prompt) tokens
    output: float = Field(ge=0)  # USD per 1M output (completion) tokens
    context: int = Field(gt=0)  # tokens read: prompt plus answer
    max_output: int = Field(gt=0)  # answer tokens at most
    tasks: list[Task] = ["short", "long", "code"]

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost of one call in USD."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000

    def over_limit(self, prompt_tokens: int, max_tokens: int) -> Optional[str]:
        """Why a call of this size does not fit the model, or None when it fits."""
        if max_tokens > self.max_output:
            return f"max_tokens {max_tokens} is over its max_output {self.max_output}"
        if prompt_tokens + max_tokens > self.context:
            return f"prompt ~{prompt_tokens} + max_tokens {max_tokens} tokens is over its context {self.context}"
        return None


@functools.lru_cache(maxsize=8)
def load_prices(path: str | Path = PRICES_FILE) -> dict[str, ModelPrice]:
    """Every model in the price table, by name; ``PriceError`` in one line naming the file and problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        models = raw["models"]
        return {name: ModelPrice(name=name, **spec) for name, spec in models.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise PriceError(f"price table {path}: cannot read a 'models' mapping ({type(err).__name__}: {err})") from None
    except ValidationError as err:
        first = err.errors()[0]
        raise PriceError(f"price table {path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def price_of(name: str, path: str | Path = PRICES_FILE) -> ModelPrice:
    prices = load_prices(path)
    if name not in prices:
        raise PriceError(f"model {name!r} is not in the price table {path}: add it there (known: {', '.join(prices)})")
    return prices[name]
