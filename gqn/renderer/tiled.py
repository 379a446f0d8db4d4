"""Many views of many scenes in one pass: the one module that goes below pyrender.

Profiling a plain pyrender loop (one ``render()`` per view) shows the time is almost all per-frame Python and
PyOpenGL overhead: uniform look-ups and sets, one draw call per node, error checks, one readback per frame.
Here every (object, view) pair of a whole batch of scenes becomes one instance of an instanced draw: the
vertex shader places each view in its own tile of a large framebuffer ("atlas") and clips it to that tile
with ``gl_ClipDistance``, so a batch costs one draw call per mesh kind and one readback.

Scenes come as ``gqn.renderer.scene.SceneSpec`` (numpy only); geometry and textures come from pyrender objects
(``pyrender.Mesh`` primitives), uploaded once per process.
Shading: base colour (times an optional texture layer) lit by one directional light plus ambient.
"""
from __future__ import annotations

import ctypes
import math
import os

import numpy as np

from gqn.errors import GqnError
from gqn.renderer.scene import SceneSpec

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

EGL_PACKAGES = "libegl1 libgl1-mesa-dri"

_VERTEX_SHADER = """
#version 330 core
layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec2 a_uv;
layout(location = 3) in vec4 i_model0;
layout(location = 4) in vec4 i_model1;
layout(location = 5) in vec4 i_model2;
layout(location = 6) in vec4 i_vp0;
layout(location = 7) in vec4 i_vp1;
layout(location = 8) in vec4 i_vp2;
layout(location = 9) in vec4 i_vp3;
layout(location = 10) in vec4 i_color;
layout(location = 11) in vec4 i_tile;      // NDC centre (x, y) and scale (x, y) of the view's tile
layout(location = 12) in vec4 i_texture;   // layer (< 0: none), uv scale (u, v)
layout(location = 13) in vec4 i_light;     // direction the light travels (xyz), ambient (w)
layout(location = 14) in vec4 i_light_color;
out vec3 v_normal;
out vec2 v_uv;
flat out vec4 v_color;
flat out vec4 v_texture;
flat out vec4 v_light;
flat out vec3 v_light_color;
out float gl_ClipDistance[4];
void main() {
    mat4 model = transpose(mat4(i_model0, i_model1, i_model2, vec4(0.0, 0.0, 0.0, 1.0)));
    mat4 view_projection = transpose(mat4(i_vp0, i_vp1, i_vp2, i_vp3));
    vec4 clip = view_projection * (model * vec4(a_position, 1.0));
    gl_ClipDistance[0] = clip.w + clip.x;
    gl_ClipDistance[1] = clip.w - clip.x;
    gl_ClipDistance[2] = clip.w + clip.y;
    gl_ClipDistance[3] = clip.w - clip.y;
    gl_Position = vec4(i_tile.xy * clip.w + i_tile.zw * clip.xy, clip.z, clip.w);
    v_normal = transpose(inverse(mat3(model))) * a_normal;
    v_uv = a_uv * i_texture.yz;
    v_color = i_color;
    v_texture = i_texture;
    v_light = i_light;
    v_light_color = i_light_color.rgb;
}
"""

_FRAGMENT_SHADER = """
#version 330 core
uniform sampler2DArray u_textures;
in vec3 v_normal;
in vec2 v_uv;
flat in vec4 v_color;
flat in vec4 v_texture;
flat in vec4 v_light;
flat in vec3 v_light_color;
out vec4 f_color;
void main() {
    vec3 n = normalize(gl_FrontFacing ? v_normal : -v_normal);
    vec3 base = v_color.rgb;
    if (v_texture.x >= 0.0) base *= texture(u_textures, vec3(v_uv, v_texture.x)).rgb;
    float diffuse = max(dot(n, -normalize(v_light.xyz)), 0.0);
    f_color = vec4(base * (v_light.w + diffuse * v_light_color), 1.0);
}
"""

_FLOATS_PER_INSTANCE = 12 * 4  # twelve vec4 attributes, locations 3..14
MAX_ATLAS_SIDE = 16384  # px: the framebuffer's width and height at most (a common GL_MAX_RENDERBUFFER_SIZE)


def atlas_layout(size: int, tiles: int) -> tuple[int, int]:
    """(columns, rows) of the atlas that TiledRenderer uses for ``tiles`` views of ``size`` px, each side at
    most ``MAX_ATLAS_SIDE``; columns x rows may be fewer than ``tiles`` when they do not fit (see
    ``atlas_fits``)."""
    cols = max(1, min(int(math.sqrt(tiles)), MAX_ATLAS_SIDE // size))
    rows = max(1, min(math.ceil(tiles / cols), MAX_ATLAS_SIDE // size))
    return cols, rows


def atlas_fits(size: int, tiles: int) -> bool:
    """Whether ``tiles`` views of ``size`` px fit the atlas of one render pass."""
    cols, rows = atlas_layout(size, tiles)
    return cols * rows >= tiles and size <= MAX_ATLAS_SIDE


def _mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved vertices (n, 8: position, normal, uv) and triangle indices of a pyrender.Mesh."""
    vertices, indices, offset = [], [], 0
    for prim in mesh.primitives:
        n = len(prim.positions)
        uv = prim.texcoord_0 if prim.texcoord_0 is not None else np.zeros((n, 2))
        vertices.append(np.hstack([prim.positions, prim.normals, uv]))
        idx = prim.indices if prim.indices is not None else np.arange(n).reshape(-1, 3)
        indices.append(np.asarray(idx).reshape(-1) + offset)
        offset += n
    return np.vstack(vertices).astype(np.float32), np.concatenate(indices).astype(np.uint32)


def create_context():
    """An EGL context of this process (surfaceless; we draw into our own framebuffers).

    ``EGL_DEVICE_ID=N`` selects the N-th EGL device (e.g. one GPU of several), as in pyrender.
    """
    if os.environ.get("PYOPENGL_PLATFORM") != "egl":
        raise GqnError("PYOPENGL_PLATFORM must be 'egl' for offscreen rendering "
                       f"(it is {os.environ.get('PYOPENGL_PLATFORM')!r})")
    try:
        from pyrender.platforms import egl

        device_id = os.environ.get("EGL_DEVICE_ID")
        device = egl.get_device_by_index(int(device_id)) if device_id else None
        platform = egl.EGLPlatform(1, 1, device=device)
        platform.init_context()
        platform.make_current()
        from OpenGL import GL

        GL.glGetString(GL.GL_VERSION)
    except Exception as e:  # EGL missing or unusable: any of ImportError, OSError, GLError, AssertionError
        raise GqnError(f"offscreen OpenGL (EGL) is unavailable ({type(e).__name__}: {e}); install the "
                       f"system packages {EGL_PACKAGES} (Debian/Ubuntu) or a GPU driver with EGL") from None
    return platform


class TiledRenderer:
    """Renders batches of SceneSpecs into (B, V, size, size, 3) uint8 arrays."""

    def __init__(self, size: int, meshes: dict, projection: np.ndarray, background=(0.0, 0.0, 0.0),
                 textures: np.ndarray | None = None, samples: int = 4, max_tiles: int = 1024):
        self._platform = create_context()
        from OpenGL import GL

        self.GL = GL
        self.size = size
        self.projection = np.asarray(projection, dtype=np.float64)
        self.background = tuple(background)
        self.samples = samples
        self.cols, self.rows = atlas_layout(size, max_tiles)
        self.max_tiles = self.cols * self.rows
        self._program = self._build_program()
        self._meshes = {name: self._upload_mesh(mesh) for name, mesh in meshes.items()}
        self._texture = self._upload_textures(textures)
        self._framebuffers = self._build_framebuffers()
        self._pixels = np.empty((self.rows * size, self.cols * size, 3), np.uint8)
        self._tile_table = self._tile_centres()

    # --- set-up, once per process -------------------------------------------------------------
    def _build_program(self):
        from OpenGL.GL import shaders

        GL = self.GL
        program = shaders.compileProgram(shaders.compileShader(_VERTEX_SHADER, GL.GL_VERTEX_SHADER),
                                         shaders.compileShader(_FRAGMENT_SHADER, GL.GL_FRAGMENT_SHADER))
        GL.glUseProgram(program)
        GL.glUniform1i(GL.glGetUniformLocation(program, "u_textures"), 0)
        for i in range(4):
            GL.glEnable(GL.GL_CLIP_DISTANCE0 + i)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        return program

    def _upload_mesh(self, mesh):
        GL = self.GL
        vertices, indices = _mesh_arrays(mesh)
        vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(vao)
        vbo, ebo, ibo = GL.glGenBuffers(3)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, vertices.nbytes, vertices, GL.GL_STATIC_DRAW)
        for loc, (width, offset) in enumerate([(3, 0), (3, 12), (2, 24)]):
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, width, GL.GL_FLOAT, False, 32, ctypes.c_void_p(offset))
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, ebo)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, indices.nbytes, indices, GL.GL_STATIC_DRAW)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, ibo)
        stride = _FLOATS_PER_INSTANCE * 4
        for k in range(12):
            loc = 3 + k
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, 4, GL.GL_FLOAT, False, stride, ctypes.c_void_p(16 * k))
            GL.glVertexAttribDivisor(loc, 1)
        GL.glBindVertexArray(0)
        return vao, ibo, len(indices)

    def _upload_textures(self, textures):
        GL = self.GL
        if textures is None:
            textures = np.full((1, 1, 1, 3), 255, np.uint8)
        textures = np.ascontiguousarray(textures, dtype=np.uint8)
        layers, height, width, _ = textures.shape
        tex = GL.glGenTextures(1)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D_ARRAY, tex)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexImage3D(GL.GL_TEXTURE_2D_ARRAY, 0, GL.GL_RGB8, width, height, layers, 0, GL.GL_RGB,
                        GL.GL_UNSIGNED_BYTE, textures)
        GL.glGenerateMipmap(GL.GL_TEXTURE_2D_ARRAY)
        GL.glTexParameteri(GL.GL_TEXTURE_2D_ARRAY, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
        GL.glTexParameteri(GL.GL_TEXTURE_2D_ARRAY, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
        for wrap in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T):
            GL.glTexParameteri(GL.GL_TEXTURE_2D_ARRAY, wrap, GL.GL_REPEAT)
        return tex

    def _framebuffer(self, samples: int):
        GL = self.GL
        width, height = self.cols * self.size, self.rows * self.size
        fbo = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
        for fmt, attachment in ((GL.GL_RGBA8, GL.GL_COLOR_ATTACHMENT0),
                                (GL.GL_DEPTH_COMPONENT24, GL.GL_DEPTH_ATTACHMENT)):
            rbo = GL.glGenRenderbuffers(1)
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rbo)
            GL.glRenderbufferStorageMultisample(GL.GL_RENDERBUFFER, samples, fmt, width, height)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, attachment, GL.GL_RENDERBUFFER, rbo)
        if GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER) != GL.GL_FRAMEBUFFER_COMPLETE:
            limit = int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE))
            raise GqnError(f"cannot create a {width}x{height} framebuffer with {samples} samples for views of "
                           f"{self.size} px (this OpenGL driver allows {limit}x{limit} px, memory permitting): "
                           "use a smaller --size or fewer --views" + " or --no-anti-aliasing" * (samples > 1))
        return fbo

    def _build_framebuffers(self):
        """(draw, read): a multisampled framebuffer resolved into a plain one, or one plain framebuffer."""
        resolve = self._framebuffer(0)
        draw = self._framebuffer(self.samples) if self.samples > 1 else resolve
        return draw, resolve

    def _tile_centres(self) -> np.ndarray:
        """(max_tiles, 4): NDC centre and scale of each tile; tile t is row t // cols from the top."""
        t = np.arange(self.max_tiles)
        row, col = t // self.cols, t % self.cols
        x = -1.0 + (2 * col + 1) / self.cols
        y = 1.0 - (2 * row + 1) / self.rows
        return np.stack([x, y, np.full_like(x, 1 / self.cols, dtype=float),
                         np.full_like(x, 1 / self.rows, dtype=float)], axis=1).astype(np.float32)

    # --- per batch ------------------------------------------------------------------------------
    def _instance_data(self, scenes: list[SceneSpec], mesh: str, view_proj: np.ndarray,
                       first_tile: int) -> np.ndarray:
        """(objects x views, 48) float32 per-instance attributes for one mesh kind."""
        views = view_proj.shape[1]
        rows = []
        for b, scene in enumerate(scenes):
            inst = scene.objects.get(mesh)
            if inst is None or len(inst.poses) == 0:
                continue
            n = len(inst.poses)
            per_object = np.hstack([
                np.asarray(inst.poses, np.float64)[:, :3, :].reshape(n, 12),
                np.asarray(inst.colors, np.float64).reshape(n, 4),
            ])
            per_scene = np.concatenate([np.asarray(scene.light_direction, np.float64), [scene.ambient],
                                        scene.light_color, [1.0]])
            block = np.empty((n, views, _FLOATS_PER_INSTANCE), np.float32)
            block[:, :, 0:12] = per_object[:, None, :12]
            block[:, :, 12:28] = view_proj[b].reshape(views, 16)[None]
            block[:, :, 28:32] = per_object[:, None, 12:16]
            tile = first_tile + b * views
            block[:, :, 32:36] = self._tile_table[tile:tile + views][None]
            block[:, :, 36:39] = np.asarray(inst.texture, np.float64)[:, None, :]
            block[:, :, 39] = 0.0
            block[:, :, 40:48] = per_scene[None, None]
            rows.append(block.reshape(n * views, _FLOATS_PER_INSTANCE))
        return np.concatenate(rows) if rows else np.empty((0, _FLOATS_PER_INSTANCE), np.float32)

    def render(self, scenes: list[SceneSpec], first_tile: int = 0) -> np.ndarray:
        """Images (B, V, size, size, 3) uint8 of a batch of scenes with equal view counts, drawn into the
        tiles ``first_tile ..`` of the atlas."""
        GL = self.GL
        views = len(scenes[0].cameras)
        if first_tile + len(scenes) * views > self.max_tiles:
            raise ValueError(f"{len(scenes)} scenes x {views} views from tile {first_tile} exceed "
                             f"{self.max_tiles} tiles")
        from gqn.renderer.camera import view_matrices

        self._platform.make_current()
        cameras = np.concatenate([s.cameras for s in scenes])
        view_proj = (self.projection[None] @ view_matrices(cameras)).reshape(len(scenes), views, 4, 4)
        draw, resolve = self._framebuffers
        width, height = self.cols * self.size, self.rows * self.size
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, draw)
        GL.glViewport(0, 0, width, height)
        GL.glClearColor(*self.background, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        for name, (vao, ibo, count) in self._meshes.items():
            data = self._instance_data(scenes, name, view_proj, first_tile)
            if not len(data):
                continue
            GL.glBindVertexArray(vao)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, ibo)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, GL.GL_STREAM_DRAW)
            GL.glDrawElementsInstanced(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, None, len(data))
        last_tile = first_tile + len(scenes) * views
        used_rows = math.ceil(last_tile / self.cols)
        read_height = used_rows * self.size
        if draw != resolve:
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, draw)
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, resolve)
            GL.glBlitFramebuffer(0, height - read_height, width, height, 0, height - read_height, width,
                                 height, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, resolve)
        pixels = self._pixels[:read_height]
        GL.glReadPixels(0, height - read_height, width, read_height, GL.GL_RGB, GL.GL_UNSIGNED_BYTE, pixels)
        tiles = self._untile(pixels[::-1], first_tile, last_tile)
        return tiles.reshape(len(scenes), views, self.size, self.size, 3)

    def _untile(self, atlas: np.ndarray, first_tile: int, last_tile: int) -> np.ndarray:
        """Tiles ``first_tile .. last_tile-1`` of the atlas's top rows, (n, size, size, 3)."""
        s = self.size
        rows = atlas.shape[0] // s
        tiles = atlas.reshape(rows, s, self.cols, s, 3).transpose(0, 2, 1, 3, 4).reshape(-1, s, s, 3)
        return tiles[first_tile:last_tile]

    def close(self):
        self._platform.make_current()
        self._platform.delete_context()
