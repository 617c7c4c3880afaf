"""The service's request and answer bodies (its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

MAX_BATCH = 1000
# Ids are 64-bit in the warehouse; 2**53 keeps them exact in JSON numbers and Redis' Lua.
MAX_CUSTOMER_ID = 2**53
CustomerId = Annotated[int, Field(ge=0, le=MAX_CUSTOMER_ID)]


class ScoreRequest(BaseModel):
    customer_id: CustomerId = Field(description="the customer's id")


class BatchRequest(BaseModel):
    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"up to {MAX_BATCH} customer ids"
    )


class Score(BaseModel):
    customer_id: int
    churn_probability: float
    risk_band: str
    contact: bool | None = Field(description="flagged for the retention team")
    contact_rule: str = Field(
        description="threshold | capacity (decided over the whole night: null online) | none "
        "| batch (a stale answer)"
    )
    model_name: str
    model_version: str
    served_by: str = Field(description="champion | challenger (the canary share)")
    feature_as_of_date: str = Field(description="the night the features are as of")
    reasons: list[str] = Field(description="features pushing the score up most, strongest first")
    stale: bool = Field(description="true: the warehouse's last batch score (the store was down)")
    stale_reason: str | None = None


class BatchAnswer(BaseModel):
    scores: list[Score]
    not_found: list[int]


class ErrorBody(BaseModel):
    error: str
    detail: str
