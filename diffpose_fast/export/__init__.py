"""Writing lifted poses to files: track files (``tracks``: npz and JSON of the mean, hypotheses, spreads and
trajectory) and BVH motion (``bvh``). Everything is importable from here."""
from .bvh import BvhMotion, bvh_forward_kinematics, euler_zxy_to_matrix, matrix_to_euler_zxy, read_bvh, write_bvh
from .tracks import FORMAT_TAG, UNITS, LiftedTrack, read_json, write_json, write_npz

__all__ = ["UNITS", "FORMAT_TAG", "LiftedTrack", "write_npz", "write_json", "read_json", "write_bvh", "read_bvh",
           "BvhMotion", "bvh_forward_kinematics", "euler_zxy_to_matrix", "matrix_to_euler_zxy"]
