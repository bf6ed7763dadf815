"""Segments from behaviour: the model snapshot, the learner, the mixture, scaling and k, RFM tiers.

:mod:`.segmenter` decides memberships with a model (:mod:`.model`); :mod:`.learner`
fits it online (:mod:`.learner_config`, :mod:`.mixture`, :mod:`.river_mixture`,
:mod:`.scaling`, :mod:`.selection`, :mod:`.fit_monitor`); :mod:`.rfm` gives the RFM
tiers; :mod:`.sweep` re-decides users after a fit; :mod:`.segment_sizes` counts
members; :mod:`.quality` scores a labelling against a truth.
"""

__all__ = ["fit_monitor", "learner", "learner_config", "mixture", "model", "quality", "rfm", "river_mixture",
           "scaling", "segment_sizes", "segmenter", "selection", "sweep"]  # fmt: skip
