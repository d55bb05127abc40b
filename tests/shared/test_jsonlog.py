"""JSON log lines: the buffered writer batches its writes and never loses a line on a clean exit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from shared.jsonlog import BufferedLineWriter


class CountingStream:
    """A text stream that remembers each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class TestBufferedLineWriter:
    async def test_lines_are_written_in_one_batch_after_the_interval(self) -> None:
        """A burst of lines costs one write, made within the interval, with every line in order."""
        stream = CountingStream()
        writer = BufferedLineWriter("edge", stream, max_lines=1000, interval_s=0.01)
        try:
            for i in range(100):
                writer.write({"n": i})
            assert stream.writes == []
            await asyncio.sleep(0.1)
            assert len(stream.writes) == 1
            assert [json.loads(line)["n"] for line in stream.writes[0].splitlines()] == list(range(100))
        finally:
            writer.close()

    async def test_a_full_batch_is_written_at_once(self) -> None:
        """max_lines lines are written without waiting for the timer."""
        stream = CountingStream()
        writer = BufferedLineWriter("edge", stream, max_lines=10, interval_s=60)
        try:
            for i in range(25):
                writer.write({"n": i})
            assert [len(w.splitlines()) for w in stream.writes] == [10, 10]
            writer.flush()
            assert [len(w.splitlines()) for w in stream.writes] == [10, 10, 5]
        finally:
            writer.close()

    def test_without_an_event_loop_each_line_is_written_at_once(self) -> None:
        """Outside an event loop nothing would flush later, so nothing is held back."""
        stream = CountingStream()
        writer = BufferedLineWriter("edge", stream, interval_s=60)
        try:
            writer.write({"a": 1})
            assert len(stream.writes) == 1
        finally:
            writer.close()

    def test_a_clean_exit_writes_the_last_lines(self, tmp_path: Path) -> None:
        """Lines still buffered when the process ends normally are written by the exit hook."""
        script = textwrap.dedent("""
            import asyncio
            from shared.jsonlog import BufferedLineWriter
            writer = BufferedLineWriter("edge", interval_s=3600)
            async def main():
                for i in range(50):
                    writer.write({"n": i})
            asyncio.run(main())
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60,
                             cwd=Path(__file__).resolve().parents[2]).stdout
        assert [json.loads(line)["n"] for line in out.splitlines()] == list(range(50))
