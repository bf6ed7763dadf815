"""Per-user features: the fold over events (:mod:`.user`), local time (:mod:`.localtime`)
and the catalogue that defines every feature once (:mod:`.catalogue`)."""

from app.core.features.catalogue import FEATURES, MODEL_FEATURES, Catalogue, Feature, catalogue
from app.core.features.config import DEFAULT_WINDOWS, FeatureConfig, typed_window
from app.core.features.localtime import WEEKDAYS, LocalTime, local_time
from app.core.features.user import DUPLICATE, LATE, MAX_CATEGORIES, MAX_GAPS, OK, UserFeatures

__all__ = [
    "DEFAULT_WINDOWS", "DUPLICATE", "FEATURES", "LATE", "MAX_CATEGORIES", "MAX_GAPS", "MODEL_FEATURES", "OK",
    "WEEKDAYS", "Catalogue", "Feature", "FeatureConfig", "LocalTime", "UserFeatures", "catalogue", "local_time",
    "typed_window",
]  # fmt: skip
