"""The Human3.6M cameras: the four intrinsic sets and the per-subject extrinsics, as data.

The numbers are the dictionary VideoPose3D ships (``common/h36m_dataset.py``) and every later project copies
(Human3.6M's own calibration). Camera index 0..3 always means the ids below in this order;
every per-subject list in the H36M data files follows it.

    idx  id        image (w x h)
    0    54138969  1000 x 1002
    1    55011271  1000 x 1000
    2    58860488  1000 x 1000
    3    60457274  1000 x 1002

Extrinsics: orientation is a quaternion (w, x, y, z) rotating camera -> world, translation is the camera
position in the world frame; X_world = R X_cam + t. The table stores translations in millimetres as published;
``h36m_extrinsics`` returns them in metres. The H36M world frame has z up (the cameras hang about 1.5 m high);
S2, S3 and S4 have no extrinsics (no 3D ground truth).
"""
from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np

from diffpose_fast.data.camera import Camera

__all__ = ["H36M_CAMERA_IDS", "H36M_SUBJECTS", "h36m_camera", "h36m_extrinsics", "h36m_camera_index"]


class _Intrinsics(NamedTuple):
    id: str
    res_w: int
    res_h: int
    center: tuple[float, float]
    focal: tuple[float, float]
    radial: tuple[float, float, float]
    tangential: tuple[float, float]
    azimuth: int  # degrees; used by visualisation only


_INTRINSICS: tuple[_Intrinsics, ...] = (
    _Intrinsics("54138969", res_w=1000, res_h=1002,
                center=(512.54150390625, 515.4514770507812),
                focal=(1145.0494384765625, 1143.7811279296875),
                radial=(-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
                tangential=(-0.0009756988729350269, -0.00142447161488235),
                azimuth=70),
    _Intrinsics("55011271", res_w=1000, res_h=1000,
                center=(508.8486328125, 508.0649108886719),
                focal=(1149.6756591796875, 1147.5916748046875),
                radial=(-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
                tangential=(-0.0016190266469493508, -0.0027408944442868233),
                azimuth=-70),
    _Intrinsics("58860488", res_w=1000, res_h=1000,
                center=(519.8158569335938, 501.40264892578125),
                focal=(1149.1407470703125, 1148.7989501953125),
                radial=(-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
                tangential=(0.0014843869721516967, -0.0007599993259645998),
                azimuth=110),
    _Intrinsics("60457274", res_w=1000, res_h=1002,
                center=(514.9682006835938, 501.88201904296875),
                focal=(1145.5113525390625, 1144.77392578125),
                radial=(-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
                tangential=(-0.0005872055771760643, -0.0018133620033040643),
                azimuth=-110),
)

H36M_CAMERA_IDS: tuple[str, ...] = tuple(c.id for c in _INTRINSICS)

# (subject, camera index) -> (orientation quaternion (w, x, y, z), translation (x, y, z) in mm, world frame).
_EXTRINSICS_MM: dict[tuple[str, int], tuple[tuple[float, float, float, float], tuple[float, float, float]]] = {
    ("S1", 0): ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
                (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
    ("S1", 1): ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
                (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
    ("S1", 2): ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
                (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
    ("S1", 3): ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
                (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ("S5", 0): ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
                (2097.3916015625, 4880.94482421875, 1605.732421875)),
    ("S5", 1): ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
                (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
    ("S5", 2): ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
                (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
    ("S5", 3): ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
                (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ("S6", 0): ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
                (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
    ("S6", 1): ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
                (1969.803955078125, -5128.73876953125, 1632.77880859375)),
    ("S6", 2): ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
                (-1769.596435546875, 5185.361328125, 1476.993408203125)),
    ("S6", 3): ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
                (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ("S7", 0): ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
                (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
    ("S7", 1): ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
                (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
    ("S7", 2): ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
                (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
    ("S7", 3): ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
                (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ("S8", 0): ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
                (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
    ("S8", 1): ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
                (2219.965576171875, -5148.453125, 1613.0440673828125)),
    ("S8", 2): ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
                (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
    ("S8", 3): ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
                (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ("S9", 0): ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
                (2044.45849609375, 4935.1171875, 1481.2275390625)),
    ("S9", 1): ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
                (1990.959716796875, -5123.810546875, 1568.8048095703125)),
    ("S9", 2): ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
                (-1670.9921875, 5211.98583984375, 1528.387939453125)),
    ("S9", 3): ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
                (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ("S11", 0): ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
                (2098.440185546875, 4926.5546875, 1500.278564453125)),
    ("S11", 1): ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
                (2083.182373046875, -4912.1728515625, 1561.07861328125)),
    ("S11", 2): ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
                (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
    ("S11", 3): ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
                (-1590.738037109375, -3854.1689453125, 1578.017578125)),
}

H36M_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")


def h36m_camera_index(index_or_id: Union[int, str]) -> int:
    """Camera index 0..3 from an index (int 0..3) or a camera id (``"54138969"`` or ``54138969``)."""
    if isinstance(index_or_id, bool) or not isinstance(index_or_id, (int, np.integer, str)):
        raise TypeError(f"h36m camera: index_or_id must be an int index 0..3 or a camera id, "
                        f"got {type(index_or_id).__name__}")
    if isinstance(index_or_id, (int, np.integer)) and 0 <= int(index_or_id) < len(H36M_CAMERA_IDS):
        return int(index_or_id)
    key = str(index_or_id)
    if key in H36M_CAMERA_IDS:
        return H36M_CAMERA_IDS.index(key)
    raise ValueError(f"h36m camera: index_or_id must be 0..3 or one of {list(H36M_CAMERA_IDS)}, got {index_or_id!r}")


def h36m_camera(index_or_id: Union[int, str]) -> Camera:
    """The intrinsics of one H36M camera (pixels, with its distortion and image size) as a ``Camera``."""
    c = _INTRINSICS[h36m_camera_index(index_or_id)]
    return Camera(fx=c.focal[0], fy=c.focal[1], cx=c.center[0], cy=c.center[1],
                  distortion=(*c.radial, *c.tangential), res_w=c.res_w, res_h=c.res_h)


def h36m_extrinsics(subject: str, index_or_id: Union[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """(orientation [4] (w, x, y, z), translation [3] in metres) of one camera for one subject, float64.

    Use with ``camera.world_to_camera(points_world_m, orientation, translation)``.
    """
    if not isinstance(subject, str):
        raise TypeError(f"h36m_extrinsics: subject must be a str like 'S1', got {type(subject).__name__}")
    if subject not in H36M_SUBJECTS:
        raise ValueError(f"h36m_extrinsics: subject must be one of {list(H36M_SUBJECTS)} "
                         f"(S2, S3, S4 have no extrinsics), got {subject!r}")
    quat, t_mm = _EXTRINSICS_MM[(subject, h36m_camera_index(index_or_id))]
    # The published translations are millimetres; the library works in metres.
    return np.array(quat, dtype=np.float64), np.array(t_mm, dtype=np.float64) / 1000.0
