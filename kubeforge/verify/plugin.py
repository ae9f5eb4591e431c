"""pytest plugin that feeds the suite (kubeforge/verify/suite) its checks and scheduler."""
from __future__ import annotations

from typing import Any

import pytest


class VerifyPlugin:
    def __init__(self, scheduler: Any):
        self.scheduler = scheduler

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "check_name" in metafunc.fixturenames:
            metafunc.parametrize("check_name", self.scheduler.order, ids=self.scheduler.order)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not session.config.option.collectonly:
            self.scheduler.start()

    @pytest.fixture(scope="session")
    def kubeforge_scheduler(self) -> Any:
        return self.scheduler
