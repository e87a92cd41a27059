"""What `GET /v1/usage` answers: the balance and what the period's runs cost."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class UsageDay(BaseModel):
    date: date
    credits: float = Field(description="Credits of the runs started that day (UTC).")


class UsageWorkload(BaseModel):
    workload_id: str
    name: str
    credits: float


class UsageRun(BaseModel):
    run_id: str
    workload_id: str
    workload_name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    credits: float


class UsageOut(BaseModel):
    balance: float = Field(description="The credit balance now.")
    days: list[UsageDay] = Field(description="Every day of the period, oldest first.")
    workloads: list[UsageWorkload] = Field(description="Credits per workload, most first.")
    runs: list[UsageRun] = Field(
        description="The period's latest runs that cost anything, newest first (at most 100)."
    )
