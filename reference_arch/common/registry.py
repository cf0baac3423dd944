"""The model registry: ``REFERENCE_ARCH_HOME/models/NAME/VERSION/``.

Each version is a directory in Hugging Face format (``save_pretrained``) plus ``card.json``
(metrics, lineage, timestamps). A model is named ``registry:NAME@latest`` or ``registry:NAME@3``.
Publishing copies into a temporary directory and renames it into place, so a reader never sees
a half-written model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from reference_arch.common.atomic import move_to_new, scratch_dir, write_json
from reference_arch.common.settings import home_path

log = logging.getLogger(__name__)
PREFIX = "registry:"
CARD = "card.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelNotFoundError(LookupError):
    """No model in the registry matches the requested name."""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: int
    path: Path
    card: dict

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.name}@{self.version}"


class ModelRegistry:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else home_path("models")
        self.root.mkdir(parents=True, exist_ok=True)

    def publish(self, name: str, source_dir: str | Path, card: dict | None = None, *,
                unless_same: str | None = None) -> RegisteredModel:
        """Copy a saved model directory into the registry as the next version of ``name``. With ``unless_same``
        (a card field, as ``trained_at``), the latest version is returned instead when its card holds the same
        value: re-materializing a publish asset over the same training adds no identical version."""
        if not _NAME.match(name):
            raise ValueError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
        if unless_same and (card or {}).get(unless_same) is not None and self._versions(name):
            latest = self.get(name)
            if latest.card.get(unless_same) == card[unless_same]:
                log.info("%s is already published from the same training (%s %s)", latest.spec, unless_same,
                         card[unless_same])
                return latest
        source_dir = Path(source_dir)
        if not (source_dir / "config.json").exists():
            raise ValueError(f"{source_dir} is not a saved Hugging Face model (no config.json)")
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with scratch_dir(model_dir / "publish") as staging:
            shutil.copytree(source_dir, staging, dirs_exist_ok=True)
            # The next number after every version folder, damaged ones too (one whose card cannot be
            # read is skipped by get/list, but its number stays taken); another publisher may take it first.
            while True:
                version = max((int(p.name) for p in model_dir.iterdir() if p.name.isdigit()), default=0) + 1
                full_card = {
                    **(card or {}),
                    "name": name,
                    "version": version,
                    "published_at": datetime.now(timezone.utc).isoformat(),
                }
                write_json(staging / CARD, full_card)
                if move_to_new(staging, model_dir / str(version)):
                    break
        return self.get(name, version)

    def _versions(self, name: str) -> list[int]:
        """Versions of ``name`` whose card reads; one that does not is skipped with a warning."""
        model_dir = self.root / name
        if not model_dir.is_dir():
            return []
        found = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and (p / CARD).exists())
        return [v for v in found if self._card(model_dir / str(v)) is not None]

    @staticmethod
    def _card(path: Path) -> dict | None:
        try:
            card = json.loads((path / CARD).read_text())
            return card if isinstance(card, dict) else None
        except (OSError, ValueError) as err:
            log.warning("skipping %s: its %s cannot be read (%s); re-publish it or delete the folder", path, CARD, err)
            return None

    def get(self, name: str, version: int | str = "latest") -> RegisteredModel:
        versions = self._versions(name)
        if version != "latest" and int(version) not in versions and (self.root / name / str(version) / CARD).exists():
            raise ModelNotFoundError(f"model {name!r} version {version} is damaged: "
                                     f"{self.root / name / str(version) / CARD} cannot be read; re-publish it "
                                     "(re-materialize the asset that published it) or delete the folder")
        if not versions:
            raise ModelNotFoundError(f"no model named {name!r} in the registry at {self.root}")
        number = versions[-1] if version == "latest" else int(version)
        if number not in versions:
            raise ModelNotFoundError(f"model {name!r} has no version {version} (versions: {versions})")
        path = self.root / name / str(number)
        card = self._card(path)
        if card is None:  # damaged between listing and reading
            raise ModelNotFoundError(f"{path / CARD} cannot be read; re-publish the model or delete the folder")
        return RegisteredModel(name, number, path, card)

    def list(self) -> list[RegisteredModel]:
        """Every version of every model, oldest first."""
        models = [
            self.get(p.name, v)
            for p in sorted(self.root.iterdir())
            if p.is_dir()
            for v in self._versions(p.name)
        ]
        return sorted(models, key=lambda m: m.card.get("published_at", ""))

    def latest(self) -> RegisteredModel:
        """The most recently published model of any name."""
        models = self.list()
        if not models:
            raise ModelNotFoundError(f"the model registry at {self.root} is empty")
        return models[-1]

    def resolve(self, spec: str) -> RegisteredModel:
        """``registry:NAME@latest``, ``registry:NAME@3`` or ``NAME`` to a registered model."""
        body = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
        name, _, version = body.partition("@")
        return self.get(name, version or "latest")
