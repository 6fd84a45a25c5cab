"""Pydantic response models of the JSON API (they validate, filter and document what the API returns)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Match",
    "PlacementBody",
    "FoundObjectBody",
    "SearchResponse",
    "ModelSummary",
    "ModelDetail",
    "Health",
    "ErrorBody",
]


class PlacementBody(BaseModel):
    """Where the registered model's render lies in the photo (:meth:`cadsearch.register.Placement.to_json`)."""

    center: list[float] = Field(min_length=2, max_length=2, description="[x, y] of the render square's centre, pixels")
    side: float = Field(description="side of the render square (the model rendered at roll 0), pixels")
    roll_deg: float = Field(description="the square's turn, counter-clockwise, degrees")


class Match(BaseModel):
    """One ranked model (DESIGN.md, ``search --json``): the same fields, in the same order, as the CLI prints
    (``placement`` and ``silhouette_iou`` only for registered results)."""

    rank: int = Field(ge=1, description="1 = best match")
    model_id: str
    name: str
    category: str
    score: float = Field(ge=0.0, le=1.0, description="ranking score in [0, 1] (a softmax over the library's models)")
    match: float = Field(ge=0.0, le=1.0, description="probability in [0, 1] that the photo shows this very model")
    polar_deg: float = Field(description="estimated camera polar angle θ in degrees (0 = from above, 90 = level)")
    azimuth_deg: float = Field(description="estimated camera azimuth φ in degrees (0 = front, 90 = left side)")
    roll_deg: float = Field(
        0.0, description="the object's in-plane rotation in the image, counter-clockwise, degrees (0 unless registered)"
    )
    placement: PlacementBody | None = Field(
        None,
        description="registered results only: where the model's render square lies in the photo (pixels of the "
        "uploaded image, EXIF orientation applied)",
    )
    silhouette_iou: float | None = Field(
        None, ge=0.0, le=1.0, description="registered results only: IoU of the model's silhouette with the object's"
    )


class FoundObjectBody(BaseModel):
    """One object found in the photo (DESIGN.md's ``objects``)."""

    box: list[float] = Field(min_length=4, max_length=4, description="[x0, y0, x1, y1] in pixels of the photo")
    detection_score: float | None = Field(description="the localiser's confidence; null: the whole photo")
    exact_match: bool
    results: list[Match]


class SearchResponse(BaseModel):
    """DESIGN.md's search JSON, the same as ``cadsearch search --json`` prints (one serialiser,
    :meth:`cadsearch.search.SearchResult.to_json`; the API leaves out the fields that the CLI leaves out): the
    query's name, the ranked models, whether the top one is an exact match, the found objects, and timings in
    milliseconds."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "query": "chair.jpg",
                "results": [
                    {
                        "rank": 1,
                        "model_id": "chair-s0-003",
                        "name": "slat-back dining chair 3",
                        "category": "chair",
                        "score": 0.91,
                        "match": 0.87,
                        "polar_deg": 62.5,
                        "azimuth_deg": 31.0,
                        "roll_deg": -4.5,
                        "placement": {"center": [412.0, 305.5], "side": 530.0, "roll_deg": -4.5},
                        "silhouette_iou": 0.91,
                    }
                ],
                "exact_match": True,
                "timing_ms": {"total": 84.2},
            }
        }
    )

    query: str
    results: list[Match]
    exact_match: bool = Field(description="the top result's match is at least the exact-match threshold (0.5)")
    objects: list[FoundObjectBody] | None = Field(
        None, description="every object found (when the searcher detects objects), most confident first"
    )
    timing_ms: dict[str, float] = Field(description='stage timings; always includes "total"')


class ModelSummary(BaseModel):
    """A library model as listed."""

    model_id: str
    name: str
    category: str
    source: str
    n_faces: int
    n_vertices: int
    has_texture: bool
    thumbnail_url: str
    page_url: str


class ModelDetail(ModelSummary):
    """A library model with all its catalog metadata (the server's file paths are left out)."""

    checksum: str
    up_axis: str
    front_axis: str
    added_at: str
    license: str | None = None
    glb_url: str


class Health(BaseModel):
    """Liveness and readiness."""

    status: str = Field(description='"ok" when the app answers')
    search_ready: bool = Field(description="whether a searcher (trained model + index) is loaded")
    detail: str | None = Field(None, description="why search is not ready, if it is not")
    models: int = Field(description="models in the library")


class ErrorBody(BaseModel):
    """Every error response of the API."""

    detail: str
