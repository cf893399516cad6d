"""Error reasons that reach logs, the journal and reason files carry no file names."""

from __future__ import annotations

import json
from pathlib import Path

from anonymizer import cli
from anonymizer import logs as module
from anonymizer.errors import MediaError

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def test_scrub_redacts_full_paths_relative_paths_names_and_stems() -> None:
    path = Path("/srv/in/site-a/john-doe-2024.mp4")
    message = "cannot open '/srv/in/site-a/john-doe-2024.mp4' (site-a/john-doe-2024.mp4, john-doe-2024)"
    scrubbed = module.scrub(message, [path, "site-a/john-doe-2024.mp4"])
    assert "john-doe" not in scrubbed and "/srv/in" not in scrubbed
    assert scrubbed.count(module.REDACTED) == 3


def test_an_oserror_is_described_by_its_strerror_never_by_its_filename() -> None:
    exc = FileNotFoundError(2, "No such file or directory", "/srv/in/jane-smith.jpg")
    assert "jane-smith" in str(exc)
    assert module.describe_error(exc, []) == "FileNotFoundError: No such file or directory"


def test_a_media_error_quoting_the_path_is_scrubbed_and_kept_on_one_line() -> None:
    exc = MediaError("decode error in\n/srv/in/jane-smith.jpg")
    text = module.describe_error(exc, [Path("/srv/in/jane-smith.jpg")])
    assert text == f"MediaError: decode error in {module.REDACTED}"


def test_services_log_to_stdout_and_one_shot_commands_to_stderr(capsys) -> None:
    module.configure_logging(stream="stderr")
    module.get_logger(job="j1").warning("model.something", reason="r")
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err.strip().splitlines()[-1])["event"] == "model.something"

    module.configure_logging()
    module.get_logger(job="j1").info("job.done")
    out, err = capsys.readouterr()
    assert json.loads(out.strip())["job"] == "j1"
    assert err == ""


def test_a_one_shot_command_keeps_its_stdout_for_its_own_output(capsys) -> None:
    # `process --json` and friends print JSON that scripts parse: a warning raised while they
    # work (a model falling back, say) must not land among it.
    assert cli.main(["validate-config", str(PROFILES / "default.yaml")]) == 0
    capsys.readouterr()
    module.get_logger().warning("model.shaped_graph_unavailable", model="platedet")
    out, err = capsys.readouterr()
    assert out == ""
    assert '"model.shaped_graph_unavailable"' in err
    module.configure_logging()  # leave the process as the services expect it
