"""The JSON API under ``/api``: search a photo, list the library, fetch a model's thumbnail and GLB."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from cadsearch.errors import InputError
from cadsearch.web.assets import ModelAssets
from cadsearch.web.deps import get_assets, get_library, get_searcher, get_settings, valid_model_id
from cadsearch.web.schemas import ErrorBody, ModelDetail, ModelSummary, SearchResponse
from cadsearch.web.searching import search_bytes
from cadsearch.web.settings import Settings
from cadsearch.web.uploads import read_upload

router = APIRouter(prefix="/api", tags=["api"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Not a readable image (empty, corrupt, truncated, too many pixels)"},
    413: {"model": ErrorBody, "description": "Upload larger than the limit (default 20 MB)"},
    503: {"model": ErrorBody, "description": "No trained model and index loaded"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such model"}}
#: Model pictures and files change only when the model does (their cache keys carry its checksum).
_CACHE_HEADERS = {"Cache-Control": "public, max-age=3600"}


# exclude_unset: a field the searcher's JSON leaves out (``placement`` of an unregistered result, ``objects``) stays
# out, instead of coming back as null: the API answers exactly what ``cadsearch search --json`` prints.
@router.post(
    "/search",
    response_model=SearchResponse,
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="Search a photo",
)
async def search(
    request: Request,
    image: UploadFile | None = File(None, description="the photo (JPEG, PNG, WebP, ...), as multipart field 'image'"),
    k: int | None = Query(None, ge=1, description="how many models to return (default: the server's top_k)"),
    settings: Settings = Depends(get_settings),
    searcher: Any = Depends(get_searcher),
) -> dict:
    """The library models that the photo most likely shows, best first, each with a score in [0, 1] and the
    estimated camera pose (polar, azimuth and roll in degrees; registered results also say where the model lies in
    the photo). ``query`` echoes the uploaded file's name."""
    if image is None:
        raise HTTPException(400, "no image was uploaded: send the photo as the multipart form field 'image'")
    if k is not None and k > settings.max_k:
        raise HTTPException(400, f"k must be at most {settings.max_k}")
    data = await read_upload(image, settings.max_upload_bytes)
    outcome = await search_bytes(
        request, searcher, data, image.filename or "upload", settings.max_pixels, k or settings.top_k
    )
    return outcome.payload


def summary_of(info: Any) -> dict:
    """The API's fields of a catalog row (see :class:`ModelSummary`)."""
    return {
        "model_id": info.model_id,
        "name": info.name,
        "category": info.category,
        "source": info.source,
        "n_faces": info.n_faces,
        "n_vertices": info.n_vertices,
        "has_texture": info.has_texture,
        "thumbnail_url": f"/api/models/{info.model_id}/thumbnail.png",
        "page_url": f"/models/{info.model_id}",
    }


async def model_info_or_404(library: Any, model_id: str) -> Any:
    """The catalog row of ``model_id`` (validated), or 404."""
    try:
        return await run_in_threadpool(library.get, valid_model_id(model_id))
    except InputError:
        raise HTTPException(404, f"there is no model with the id {model_id!r}") from None


@router.get("/models", response_model=list[ModelSummary], summary="List the library")
async def list_models(
    category: str | None = Query(None, max_length=200, description="only this category"),
    library: Any = Depends(get_library),
) -> list[dict]:
    """Every model of the library (or of one category), sorted by id."""
    rows = await run_in_threadpool(library.list, category)
    return [summary_of(m) for m in rows]


@router.get("/models/{model_id}", response_model=ModelDetail, responses=_NOT_FOUND, summary="One model")
async def get_model(model_id: str, library: Any = Depends(get_library)) -> dict:
    """The catalog metadata of one model."""
    info = await model_info_or_404(library, model_id)
    return summary_of(info) | {
        "checksum": info.checksum,
        "up_axis": info.up_axis,
        "front_axis": info.front_axis,
        "added_at": info.added_at,
        "license": info.license,
        "glb_url": f"/api/models/{info.model_id}/model.glb",
    }


@router.get(
    "/models/{model_id}/thumbnail.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_NOT_FOUND},
    summary="Thumbnail (PNG)",
)
async def thumbnail(
    model_id: str,
    polar: float | None = Query(None, ge=0, le=180, allow_inf_nan=False, description="camera polar angle θ, degrees"),
    azimuth: float | None = Query(None, allow_inf_nan=False, description="camera azimuth φ, degrees"),
    roll: float | None = Query(
        None, allow_inf_nan=False, description="the object's turn in the picture, counter-clockwise, degrees"
    ),
    library: Any = Depends(get_library),
    assets: ModelAssets = Depends(get_assets),
) -> Response:
    """The model rendered from a front three-quarter view, or from the pose given by ``polar``, ``azimuth`` and
    ``roll`` (the picture turned counter-clockwise by ``roll``, as the object lies in the photo)."""
    info = await model_info_or_404(library, model_id)
    png = await run_in_threadpool(assets.thumbnail_png, info.model_id, polar, azimuth, roll)
    return Response(png, media_type="image/png", headers=_CACHE_HEADERS)


@router.get(
    "/models/{model_id}/model.glb",
    response_class=FileResponse,
    responses={200: {"content": {"model/gltf-binary": {}}}, **_NOT_FOUND},
    summary="3D model (GLB)",
)
async def model_glb(
    model_id: str, library: Any = Depends(get_library), assets: ModelAssets = Depends(get_assets)
) -> FileResponse:
    """The canonical mesh (+Y up, front +Z, centred, radius 1) as binary glTF."""
    info = await model_info_or_404(library, model_id)
    path = await run_in_threadpool(assets.glb_path, info.model_id)
    return FileResponse(path, media_type="model/gltf-binary", filename=f"{info.model_id}.glb", headers=_CACHE_HEADERS)
