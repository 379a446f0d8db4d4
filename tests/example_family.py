"""The example family of docs/adding-a-family.md (which shows this file): one coloured sphere."""
import click
import numpy as np

from gqn.renderer import camera
from gqn.renderer.colors import hsv_to_rgb
from gqn.renderer.families.base import Family, FamilySpec, Param, import_pyrender
from gqn.renderer.scene import Instances, SceneSpec


class Sphere(Family):
    spec = FamilySpec(
        "sphere", views=8,
        summary="One coloured sphere seen from anywhere around it.",
        examples=("gqn render sphere --radius 0.8 --out data/sphere/train",),
        params=(Param("radius", click.FloatRange(0.1, 1.0), 0.5, "Radius of the sphere."),),
    )

    def __init__(self, views: int, size: int, radius: float = 0.5):
        super().__init__(views, size, radius=radius)
        self.radius = radius

    def meshes(self):  # once per render worker: import pyrender and trimesh here, not at the top
        import trimesh

        pyrender = import_pyrender()
        return {"ball": pyrender.Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=3))}

    def projection(self):
        return camera.perspective(np.radians(45.0), 0.1, 10.0)

    def sample(self, rng):
        pose = np.diag([self.radius, self.radius, self.radius, 1.0])[None]  # the unit sphere, scaled
        color = np.append(hsv_to_rgb(rng.random(), 0.8, 1.0), 1.0)[None]    # RGBA, any hue
        cameras = camera.look_at(camera.random_sphere_positions(rng, self.views, 3.0))  # drawn last
        return SceneSpec(cameras=cameras, objects={"ball": Instances(pose, color)},
                         light_direction=np.array([-0.3, -1.0, -0.5]))
