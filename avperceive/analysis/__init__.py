"""avperceive.analysis"""

from .event_types import assign_event_type, category_event_types, majority_vote, union_multilabel  # noqa: F401
