"""Moved to ``diffpose_fast.data.frames`` (the FrameSet is data, used by the method below training); this name
stays importable for scripts written before the move."""
from ..data.frames import FrameSet, encoder_inputs, fill_missing, frames_from_sequences  # noqa: F401
