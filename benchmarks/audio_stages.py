"""Run only the audio stages (get_recording, pad_track per track, mixdown, waveform) on a folder,
in this process, and print their wall times and this process's peak RSS as JSON.

    python benchmarks/audio_stages.py FOLDER DATA_DIR
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reflector_cli.core.config import load_settings  # noqa: E402
from reflector_cli.pipeline import dag  # noqa: E402
from reflector_cli.pipeline.execute import run_stage  # noqa: E402
from reflector_cli.pipeline.runinput import prepare_input  # noqa: E402


def main(folder: Path, data: Path) -> None:
    settings = load_settings(data_dir=data)
    pipe = prepare_input(str(folder), settings)
    outputs: dict = {}
    times: dict[str, float] = {}

    def run(name: str, track: int | None = None) -> dict:
        st = dag.stage(name)
        inp = st.build(pipe, outputs, track)
        t0 = time.perf_counter()
        out = st.output_model.model_validate(
            run_stage(name, inp.model_dump(mode="json"), settings, track=track)
        )
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        return out

    outputs["get_recording"] = run("get_recording")
    n = len(outputs["get_recording"].tracks)
    outputs["pad_track"] = [run("pad_track", i) for i in range(n)]
    outputs["mixdown_tracks"] = run("mixdown_tracks")
    outputs["generate_waveform"] = run("generate_waveform")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pads = outputs["pad_track"]
    report = {
        "stages": times,
        "peak_rss_mb": peak_kb / 1024,
        "tracks": n,
        "meeting_s": max(p.duration_s for p in pads),
        # What the stages actually decode: every track's own audio, without its join offset.
        "track_audio_s": sum(p.duration_s - p.offset_s for p in pads),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
