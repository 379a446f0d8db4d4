"""Cross-check against pyrender's own renderer (its own module: pyrender's delete() terminates the EGL
display, which would invalidate renderers that other tests keep open)."""
from gqn.renderer import camera
from gqn.renderer.families.shepard_matzler import HALF_EXTENT, ShepardMatzler
from gqn.renderer.tiled import TiledRenderer
from tests.helpers import foreground

SIZE = 64


def dilate(mask):
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def test_matches_pyrender_silhouettes():
    """Our renderer and pyrender's OffscreenRenderer see the same geometry from the same poses (up to
    one pixel of rasterisation difference along edges)."""
    import pyrender

    family = ShepardMatzler(views=6, size=SIZE, parts=7)
    spec = family.scene(seed=3, index=11)
    ours = TiledRenderer(SIZE, family.meshes(), family.projection(), samples=0, max_tiles=6)
    masks = foreground(ours.render([spec])[0])
    ours.close()
    scene = pyrender.Scene(bg_color=[0, 0, 0, 1], ambient_light=[1.0, 1.0, 1.0])
    mesh = family.meshes()["cube"]
    for pose in spec.objects["cube"].poses:
        scene.add(mesh, pose=pose)
    cam = scene.add(pyrender.OrthographicCamera(xmag=HALF_EXTENT, ymag=HALF_EXTENT, znear=0.1, zfar=10))
    r = pyrender.OffscreenRenderer(SIZE, SIZE)
    try:
        for v, pose in enumerate(camera.camera_to_world(spec.cameras)):
            scene.set_pose(cam, pose)
            theirs = r.render(scene, flags=pyrender.RenderFlags.DEPTH_ONLY) > 0
            assert theirs.sum() > 100
            away_from_edges = (masks[v] & ~dilate(theirs)) | (theirs & ~dilate(masks[v]))
            assert away_from_edges.sum() <= 2, v
            assert (masks[v] ^ theirs).sum() < 0.1 * theirs.sum(), v
    finally:
        r.delete()
