"""The walkthrough in docs/walkthrough.md, run verbatim (only the port differs) with bash and curl."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx

from tests.conftest import RunningStack

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_script(api_url: str, feature_server_url: str) -> str:
    text = (ROOT / "docs" / "walkthrough.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8, "steps 0-7 must be runnable bash blocks"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    return script.replace("http://localhost:8000", api_url).replace("http://localhost:6566", feature_server_url)


def test_walkthrough_steps_1_to_7_run_verbatim(running_stack: RunningStack) -> None:
    result = subprocess.run(
        ["bash", "-c", walkthrough_script(running_stack.api_url, running_stack.feature_server_url)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"status":"following"' in out
    assert '"total":1' in out and '"username":"bob"' in out and '"username":"alice"' in out, "followers/following"
    assert '"status":"liked"' in out
    assert "GET media -> 200 image/png" in out
    assert '"candidates_social": 1' in out
    # step 7: Feast's own response shape, with real values for the new posts
    feast = json.loads(out[out.rindex("\n{\n") :])  # the last document printed
    names = feast["metadata"]["feature_names"]
    assert {"post_id", "user_id", "like_count", "created_at", "follower_count"} <= set(names)
    created = feast["results"][names.index("created_at")]
    assert all(s == "PRESENT" for s in created["statuses"]), created

    api = httpx.Client(base_url=running_stack.api_url)
    alice_id = re.search(r'"user_id": "([0-9a-f-]{36})"', out).group(1)
    alice = api.get(f"/users/{alice_id}").json()
    assert alice["username"] == "alice" and alice["follower_count"] == 1
    # step 3 printed the post; step 4's feed for Bob printed it again (ranked among any discovery items)
    hello_id = re.search(r'"post_id": "([0-9a-f-]{36})"', out).group(1)
    bobs_items = out[out.index(hello_id) + 36 : out.index('"candidates_social"')]  # items precede the counts
    assert f'"post_id": "{hello_id}"' in bobs_items, "Bob's feed must contain Alice's post"
    post = api.get(f"/posts/{hello_id}").json()
    assert post["like_count"] == 1 and post["content"].startswith("Hello from Alice!")
