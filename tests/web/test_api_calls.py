"""`static/js/api.js` in the browser that runs it: an answer cut off mid-body (a proxy restarting, a
dropped link) is a failed call, status 0, never a success with nothing in it (which the job page's
log took as a read and stopped on)."""

from __future__ import annotations

from typing import Any

from tests.support.cuttable_link import cuttable_link
from tests.web.conftest import Cloud, Tab

CALL = """async () => {
  const { api } = await import('./static/js/api.js');
  return await api('GET', 'api/cloud/jobs');
}"""


def test_an_answer_cut_off_mid_body_is_a_failed_call(cloud: Cloud, tab: Tab) -> None:
    with cuttable_link(cloud.base) as link:
        tab.base = link.url
        page: Any = tab.open("overview")
        whole = page.evaluate(CALL)
        assert whole["ok"] is True and whole["status"] == 200 and "jobs" in whole["body"]
        link.cutting_answers = True
        assert page.evaluate(CALL) == {"ok": False, "status": 0, "body": None}
        link.cutting_answers = False
        assert page.evaluate(CALL)["ok"] is True
