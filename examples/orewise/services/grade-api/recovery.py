"""Reference data loading and the recovery model.

recovery-curve-v1, per ore type (coefficients from reference.json):

    recovery_pct = r_max_pct * (1 - exp(-k_per_gpt * au_gpt))        grade response
                 - tph_penalty_pct_per_100t * max(0, tph - nominal_tph) / 100
                                                                       coarser grind
                 - cu_penalty_pct_per_pct * cu_pct                     cyanide-soluble Cu
    clamped to [0, r_max_pct]

A later milestone replaces this with an ONNX model served by sandpit's model
endpoint; the predict() signature is what the rest of the service relies on.
"""

import json
import math

COEFFICIENTS = ("r_max_pct", "k_per_gpt", "nominal_tph", "tph_penalty_pct_per_100t", "cu_penalty_pct_per_pct")


class ReferenceError(Exception):
    pass


class UnknownOreType(Exception):
    pass


class RecoveryModel:
    def __init__(self, name, coefficients, reference_version):
        self.name = name
        self.coefficients = coefficients  # ore_type -> {coefficient: float}
        self.reference_version = reference_version

    @property
    def ore_types(self):
        return sorted(self.coefficients)

    def nominal_tph(self, ore_type):
        return self._coefficients(ore_type)["nominal_tph"]

    def _coefficients(self, ore_type):
        try:
            return self.coefficients[ore_type]
        except KeyError:
            raise UnknownOreType(ore_type) from None

    def predict(self, ore_type, au_gpt, cu_pct, throughput_tph=None):
        """Predicted gold recovery in percent, rounded to 0.01."""
        c = self._coefficients(ore_type)
        tph = c["nominal_tph"] if throughput_tph is None else throughput_tph
        recovery = (
            c["r_max_pct"] * (1 - math.exp(-c["k_per_gpt"] * au_gpt))
            - c["tph_penalty_pct_per_100t"] * max(0.0, tph - c["nominal_tph"]) / 100
            - c["cu_penalty_pct_per_pct"] * cu_pct
        )
        return round(min(max(recovery, 0.0), c["r_max_pct"]), 2)


def load_model(path, model_name):
    """Read reference.json and return the named RecoveryModel, or raise ReferenceError."""
    try:
        with open(path, encoding="utf-8") as f:
            reference = json.load(f)
    except FileNotFoundError:
        raise ReferenceError(f"{path} not found (written by the prepare-data job)") from None
    except (OSError, ValueError) as err:
        raise ReferenceError(f"cannot read {path}: {err}") from None
    models = reference.get("recovery_models") if isinstance(reference, dict) else None
    if not isinstance(models, dict) or model_name not in models:
        available = ", ".join(sorted(models)) if isinstance(models, dict) else "none"
        raise ReferenceError(f"{path} has no recovery model {model_name!r} (available: {available})")
    coefficients = models[model_name].get("coefficients")
    if not isinstance(coefficients, dict) or not coefficients:
        raise ReferenceError(f"{path}: recovery model {model_name!r} has no coefficients")
    for ore_type, values in coefficients.items():
        for key in COEFFICIENTS:
            value = values.get(key) if isinstance(values, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ReferenceError(f"{path}: {model_name}.{ore_type}.{key} must be a number")
    return RecoveryModel(model_name, coefficients, reference.get("reference_version", "unknown"))
