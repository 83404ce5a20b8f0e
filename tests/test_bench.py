"""restyle bench's report: separate runs combined into one, further measurements appended."""

import json

from restyle.cli import main
from restyle.evaluate import bench


def result(command, speed, reference=None):
    r = {"command": command, "content": "c.jpg", "style": "s.jpg", "iters": 5, "speed": speed,
         "one_pass": [], "machine": {"date": "2026-11-26", "cpu": "cpu", "cores": 2,
                                     "torch_threads": 2, "bf16_cpu": True, "torch": "2.13.0",
                                     "python": "3.11", "restyle": "0.1.0"}}
    if reference:
        r["reference"] = reference
    return r


def test_render_combines_runs_and_appends_further_measurements(tmp_path, monkeypatch, capsys):
    row = {"method": "gatys", "family": "image-optimization", "size": 256, "sec_per_iter": 0.1,
           "sec_per_iter_fp32": 0.2, "peak_mb": 700}
    a = result("restyle bench --methods gatys", [row])
    b = result("restyle bench --methods texture", [{**row, "method": "texture"}])
    combined = bench.combine_results([a, b])
    assert [r["method"] for r in combined["speed"]] == ["gatys", "texture"]
    assert combined["command"] == "restyle bench --methods gatys; restyle bench --methods texture"
    further = tmp_path / "further"
    further.mkdir()
    (further / "video.md").write_text("# Video\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n"
                                     "```sh\n# a comment\nrestyle video a.mp4\n```\n")
    monkeypatch.setattr(bench, "FURTHER", further)
    paths = []
    for k, r in enumerate((a, b)):
        paths.append(tmp_path / f"r{k}.json")
        paths[-1].write_text(json.dumps(r))
    md, js = tmp_path / "B.md", tmp_path / "b.json"
    assert main(["bench", "--render", *map(str, paths), "-o", str(md), "--json", str(js)]) == 0
    text = md.read_text()
    assert "| gatys |" in text and "| texture |" in text
    assert "\n## Video\n" in text and "| 1 | 2 |" in text  # heading moved one level down
    assert "\n# a comment\n" in text  # but not a comment in a code block
    assert json.loads(js.read_text())["command"].count("restyle bench") == 2


def test_reference_section_explains_the_ratio_by_the_cost_per_iteration():
    ref = {"size": [384, 512], "ref_iterations": 100, "ref_seconds": 100.0, "ref_loss": 0.5,
           "reached": False, "levels": [[192, 256], [384, 512]], "ours_settings": {"a": 1},
           "ours_trace": [[1, 10.0, 0.9], [2, 40.0, 0.6]], "ours_default_loss": 0.6,
           "ours_default_seconds": 40.0,
           "ref_trace": [[50, 50.0, 0.7], [100, 100.0, 0.5]]}
    row = {"method": "gatys", "family": "image-optimization", "size": 512, "sec_per_iter": 0.3,
           "sec_per_iter_fp32": 1.2, "peak_mb": 900}
    text = bench.render_markdown(result("restyle bench", [row], ref))
    assert "against the reference's 1.000 s, a ratio of 0.30" in text
    assert "the measured ratios above run from 0.80 to 0.80" in text
    assert bench.reference_floor(result("x", [], ref), ref) == []  # no speed row: no claim
