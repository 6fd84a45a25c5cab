"""The HTML pages: home (upload), results, model (3D view), library. Server-rendered, a little vanilla JS."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cadsearch.errors import InputError
from cadsearch.render.thumbnails import THUMBNAIL_AZIMUTH_DEG, THUMBNAIL_POLAR_DEG
from cadsearch.search.searcher import is_exact_match
from cadsearch.web.assets import ModelAssets
from cadsearch.web.deps import get_assets, get_examples, get_library, get_searcher, get_settings, get_store
from cadsearch.web.examples import Example
from cadsearch.web.images import encode_jpeg
from cadsearch.web.routers.api import model_info_or_404
from cadsearch.web.searching import search_bytes
from cadsearch.web.settings import Settings
from cadsearch.web.store import ResultStore, StoredSearch
from cadsearch.web.templating import templates
from cadsearch.web.uploads import UploadTooLarge, read_upload

router = APIRouter(tags=["pages"], include_in_schema=False)

EXPIRED = "This result is no longer available (the server keeps only recent searches). Please search again."


def _home(request: Request, settings: Settings, examples: list[Example], error: str | None = None, status: int = 200):
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "active": "search",
            "examples": examples,
            "error": error,
            "max_bytes": settings.max_upload_bytes,
            "search_ready": getattr(request.app.state, "searcher", None) is not None,
            "not_ready": getattr(request.app.state, "searcher_error", None),
        },
        status_code=status,
    )


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request, settings: Settings = Depends(get_settings), examples: list = Depends(get_examples)
) -> Response:
    """Upload a photo (file picker, drag and drop, paste) or pick an example."""
    return _home(request, settings, examples)


@router.post("/search")
async def search_page(
    request: Request,
    image: UploadFile | None = File(None),
    example: str | None = Form(None, max_length=32),
    settings: Settings = Depends(get_settings),
    examples: list = Depends(get_examples),
    store: ResultStore = Depends(get_store),
) -> Response:
    """Run a search from the home page's form and redirect to its results page (post/redirect/get)."""
    try:
        searcher = get_searcher(request)
        if example:
            chosen = next((e for e in examples if e.key == example), None)
            if chosen is None:
                raise InputError("that example is no longer available; choose another one")
            data, name = await run_in_threadpool(Path(chosen.path).read_bytes), chosen.title
        elif image is not None and (image.filename or image.size):
            data, name = await read_upload(image, settings.max_upload_bytes), image.filename or "upload"
        else:
            raise InputError("choose a photo first (or drop one on the box)")
        outcome = await search_bytes(request, searcher, data, name, settings.max_pixels, settings.top_k)
    except (InputError, UploadTooLarge) as err:
        status = 413 if isinstance(err, UploadTooLarge) else 400
        return _home(request, settings, examples, error=err.detail if status == 413 else str(err), status=status)
    except HTTPException as err:
        return _home(request, settings, examples, error=str(err.detail), status=err.status_code)
    item = store.add(
        outcome.payload["query"], outcome.image, outcome.result, outcome.payload, outcome.frame, outcome.scale
    )
    return RedirectResponse(f"/results/{item.search_id}", status_code=303)


def _stored_or_404(store: ResultStore, search_id: str) -> StoredSearch:
    item = store.get(search_id) if len(search_id) <= 64 else None
    if item is None:
        raise HTTPException(404, EXPIRED)
    return item


def _dial(azimuth_deg: float, polar_deg: float, roll_deg: float = 0.0) -> dict:
    """Points of the pose dials drawn on result cards (SVG units, 0-48 box, centre 24,24, radius 18), and the roll
    dial's SVG turn (``svg_roll``: degrees, clockwise as SVG turns with y down, so minus our counter-clockwise)."""
    az, po = math.radians(azimuth_deg), math.radians(polar_deg)
    # seen from above with the object's front (+Z) pointing down the page: camera at (sin φ, cos φ) in (x, z)
    # seen from the side: straight above at the top, level with the object on the right
    return {
        "ax": round(24 + 18 * math.sin(az), 2),
        "ay": round(24 + 18 * math.cos(az), 2),
        "px": round(24 + 18 * math.sin(po), 2),
        "py": round(24 - 18 * math.cos(po), 2),
        "svg_roll": round(-float(roll_deg), 2) + 0.0,  # + 0.0: no "-0.0" in the page
    }


def wrap_roll(roll_deg: float) -> float:
    """A roll in degrees wrapped to (-180, 180]."""
    r = float(roll_deg) % 360.0
    return r - 360.0 if r > 180.0 else r


def pose_query(m: Any) -> str:
    """The URL query that puts the model page and the thumbnail at ``m``'s pose: ``polar=…&azimuth=…``, and
    ``&roll=…`` when the result has a roll (registered results)."""
    query = f"polar={float(m.polar_deg):.2f}&azimuth={float(m.azimuth_deg):.2f}"
    roll = round(float(getattr(m, "roll_deg", 0.0)), 2)
    return query + (f"&roll={roll:.2f}" if roll else "")


def has_roll(m: Any) -> bool:
    """Whether the result pages show ``m``'s roll: it was registered (its roll was measured, even if 0) or it has
    one (a roll is otherwise the assumed 0 of an upright camera, not worth a dial)."""
    return getattr(m, "placement", None) is not None or round(float(getattr(m, "roll_deg", 0.0)), 2) != 0.0


def _objects(item: StoredSearch) -> list[dict]:
    """The search's found objects in display pixels: ``number`` (1 = most confident), ``box``, ``score`` (None:
    the whole photo was searched), ``frame``, ``results``. Empty for a result without ``objects``."""
    k = item.scale
    return [
        {
            "number": i,
            "box": tuple(v * k for v in o.box),
            "score": o.detection_score,
            "frame": o.frame.scaled(k) if o.frame is not None else None,
            "results": o.results,
        }
        for i, o in enumerate(getattr(item.result, "objects", None) or [], 1)
    ]


def _object_or_404(item: StoredSearch, number: int) -> dict | None:
    objects = _objects(item)
    if not objects:
        return None
    if number > len(objects):
        raise HTTPException(404, f"this search found no object number {number}")
    return objects[number - 1]


@router.get("/results/{search_id}", response_class=HTMLResponse)
async def results_page(
    request: Request,
    search_id: str,
    object: int = Query(1, ge=1, le=1000),  # noqa: A002 - the URL's name for it
    store: ResultStore = Depends(get_store),
) -> Response:
    """The query photo (numbered boxes when objects were detected) beside the selected object's ranked models,
    with its top model's registration overlay."""
    item = _stored_or_404(store, search_id)
    chosen = _object_or_404(item, object)
    results = chosen["results"] if chosen else item.result.results
    found = _objects(item)
    # every object once any was detected (the first may be the whole photo, when its answer beat a part's box)
    shown = found if any(o["score"] is not None for o in found) else []
    matches = [
        {
            "m": m,
            "dial": _dial(m.azimuth_deg, m.polar_deg, getattr(m, "roll_deg", 0.0)),
            "pose": pose_query(m),
            "roll": has_roll(m),
            "fit": getattr(m, "silhouette_iou", None),
        }
        for m in results
    ]
    return templates.TemplateResponse(
        request,
        "results.html",
        {
            "active": "search",
            "item": item,
            "matches": matches,
            "objects": shown,
            "selected": object if chosen else 1,
            "exact_match": is_exact_match(results),  # the selected object's verdict
            "total_ms": float(item.payload.get("timing_ms", {}).get("total", 0.0)),
            "height": item.image.shape[0],
            "width": item.image.shape[1],
        },
    )


@router.get("/results/{search_id}/query.jpg")
async def query_image(search_id: str, store: ResultStore = Depends(get_store)) -> Response:
    """The query photo (display size)."""
    item = _stored_or_404(store, search_id)
    if "query.jpg" not in item.cache:
        item.cache["query.jpg"] = await run_in_threadpool(encode_jpeg, item.image)
    return Response(
        item.cache["query.jpg"], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/results/{search_id}/boxes.png")
async def boxes_image(search_id: str, store: ResultStore = Depends(get_store)) -> Response:
    """The query photo (display size) with the detected objects' boxes, numbered 1 = most confident."""
    from cadsearch.detect.pictures import draw_boxes
    from cadsearch.web.images import encode_png

    item = _stored_or_404(store, search_id)
    if "boxes.png" not in item.cache:
        detected = [o for o in _objects(item) if o["score"] is not None]
        picture = draw_boxes(item.image, [o["box"] for o in detected], [o["score"] for o in detected],
                             numbers=[o["number"] for o in detected])  # fmt: skip
        item.cache["boxes.png"] = await run_in_threadpool(encode_png, picture)
    return Response(item.cache["boxes.png"], media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/results/{search_id}/overlay.png")
async def overlay_image(
    search_id: str,
    rank: int = Query(1, ge=1, le=1000),
    object: int = Query(1, ge=1, le=1000),  # noqa: A002 - the URL's name for it
    store: ResultStore = Depends(get_store),
    assets: ModelAssets = Depends(get_assets),
) -> Response:
    """The model of result ``rank`` (of found object ``object``) drawn over the query photo at its estimated pose."""
    item = _stored_or_404(store, search_id)
    chosen = _object_or_404(item, object)
    matches = chosen["results"] if chosen else item.result.results
    frame = chosen["frame"] if chosen else item.frame
    box = chosen["box"] if chosen and chosen["score"] is not None else None
    if rank > len(matches):
        raise HTTPException(404, f"this search has no result number {rank}")
    match = matches[rank - 1]
    # a registered placement is in pixels of the searched image, like the boxes and frames: scaled to the display
    registered = getattr(match, "placement", None)
    placement = registered.scaled(item.scale) if registered is not None else None
    key = f"overlay-{object}-{rank}.png"
    if key not in item.cache:
        item.cache[key] = await run_in_threadpool(assets.overlay_png, item.image, match, frame, box, placement)
    return Response(item.cache[key], media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/examples/{key}")
async def example_image(key: str, examples: list = Depends(get_examples)) -> Response:
    """An example image, by its key (never by a path)."""
    chosen = next((e for e in examples if e.key == key), None)
    if chosen is None:
        raise HTTPException(404, "there is no such example image")
    return FileResponse(chosen.path, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/models", response_class=HTMLResponse)
async def library_page(
    request: Request,
    category: str | None = Query(None, max_length=200),
    library: Any = Depends(get_library),
) -> Response:
    """Every model with its thumbnail, filterable by category."""
    models = await run_in_threadpool(library.list)
    counts: dict[str, int] = {}
    for m in models:
        counts[m.category] = counts.get(m.category, 0) + 1
    shown = [m for m in models if category is None or m.category == category]
    return templates.TemplateResponse(
        request,
        "library.html",
        {
            "active": "library",
            "models": shown,
            "total": len(models),
            "categories": sorted(counts.items()),
            "category": category,
        },
    )


@router.get("/models/{model_id}", response_class=HTMLResponse)
async def model_page(
    request: Request,
    model_id: str,
    polar: float | None = Query(None, ge=0, le=180, allow_inf_nan=False),
    azimuth: float | None = Query(None, allow_inf_nan=False),
    roll: float | None = Query(None, allow_inf_nan=False),
    score: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
    library: Any = Depends(get_library),
) -> Response:
    """An interactive 3D view of the model, its camera at the estimated pose when one is given (``roll``: the
    object's turn in the photo, counter-clockwise, degrees; the view is turned by it)."""
    info = await model_info_or_404(library, model_id)
    estimated = polar is not None or azimuth is not None or roll is not None
    # Without an estimated pose the 3D view opens where the model's thumbnail was taken.
    polar_v = THUMBNAIL_POLAR_DEG if polar is None else polar
    azimuth_v = (THUMBNAIL_AZIMUTH_DEG if azimuth is None else azimuth) % 360.0
    roll_v = wrap_roll(roll or 0.0) + 0.0  # + 0.0: no "-0.0" in the page
    return templates.TemplateResponse(
        request,
        "model.html",
        {
            "active": "library",
            "info": info,
            "estimated": estimated,
            "polar": polar_v,
            "azimuth": azimuth_v,
            "roll": roll_v,
            "has_roll": roll is not None,
            "score": score,
        },
    )
