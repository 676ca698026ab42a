"""The demo's forensics files: made again byte for byte by their script, solvable with everyday tools,
attached by `seed` (once: a second run changes nothing), with the demo's hints."""

import hashlib
import re
import struct

import pytest
from django.core.management import call_command

from challenges.models import ChallengeFile, Hint, Project
from challenges.tests.attachments import attachments_in, stored_objects
from vulhub.seeding import make_demo_files
from vulhub.seeding.demo import FILES_DIR

MEMORY = (FILES_DIR / "memory.raw").read_bytes()
CAPTURE = (FILES_DIR / "ftp-session.pcap").read_bytes()


def ascii_strings(data: bytes) -> list[str]:
    """What `strings` prints: runs of 4 or more printable ASCII characters."""
    return [found.decode() for found in re.findall(rb"[\x20-\x7e]{4,}", data)]


def utf16_strings(data: bytes) -> list[str]:
    """What `strings -e l` prints: the same, two bytes per character (UTF-16LE)."""
    return [found.decode("utf-16-le") for found in re.findall(rb"(?:[\x20-\x7e]\x00){4,}", data)]


def flags_in(strings: list[str]) -> list[str]:
    return [flag for text in strings for flag in re.findall(r"FLAG\{[^}]*\}", text)]


def test_the_committed_files_are_what_the_script_makes(tmp_path):
    assert make_demo_files.main(["--check"]) == 0
    assert make_demo_files.main(["--dest", str(tmp_path)]) == 0
    assert (tmp_path / "memory.raw").read_bytes() == MEMORY
    assert (tmp_path / "ftp-session.pcap").read_bytes() == CAPTURE


def test_the_check_fails_when_a_file_differs(tmp_path):
    (tmp_path / "memory.raw").write_bytes(MEMORY[:-1] + b"!")
    (tmp_path / "ftp-session.pcap").write_bytes(CAPTURE)

    assert make_demo_files.main(["--check", "--dest", str(tmp_path)]) == 1


def test_plain_strings_find_only_the_decoy_in_the_memory_image():
    assert flags_in(ascii_strings(MEMORY)) == ["FLAG{volatility}"]
    assert "notepad.exe" in ascii_strings(MEMORY)  # the process list names it
    assert any("CreateRemoteThread" in text for text in ascii_strings(MEMORY))


def test_utf16_strings_find_the_flag_in_the_injected_process():
    found = utf16_strings(MEMORY)

    assert flags_in(found) == ["FLAG{volatile_memories}"]
    assert len(MEMORY) == 256 * 1024


def packets(capture: bytes):
    """(IPv4 header, TCP header, payload) of each frame of a libpcap file, checksums checked."""
    magic, major, minor, _zone, _sigfigs, _snaplen, link = struct.unpack("<IHHiIII", capture[:24])
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, 1)  # libpcap 2.4, Ethernet
    offset = 24
    while offset < len(capture):
        _seconds, _micros, kept, length = struct.unpack("<IIII", capture[offset : offset + 16])
        frame = capture[offset + 16 : offset + 16 + kept]
        offset += 16 + kept
        assert kept == length == len(frame)
        assert frame[12:14] == b"\x08\x00"  # IPv4
        ip = frame[14:34]
        assert make_demo_files.checksum(ip) == 0
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = frame[34 : 14 + total]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
        assert make_demo_files.checksum(pseudo + tcp) == 0
        yield ip, tcp[:20], tcp[20:]


def stream(capture: bytes, port: int) -> bytes:
    """The bytes sent from `port`, put in order by their sequence numbers (Follow TCP Stream)."""
    segments = {}
    for _ip, tcp, payload in packets(capture):
        source_port, _target, seq = struct.unpack("!HHI", tcp[:8])
        if source_port == port and payload:
            segments[seq] = payload
    return b"".join(segments[seq] for seq in sorted(segments))


def test_the_capture_is_a_valid_pcap_and_the_flag_follows_the_data_stream():
    frames = list(packets(CAPTURE))

    assert len(frames) > 40
    assert b"PASS wonderland-2026\r\n" in stream(CAPTURE, 49822)  # the clear-text login
    control = stream(CAPTURE, 21)
    assert b"227 Entering Passive Mode (198,51,100,21,195,80)" in control
    assert flags_in([stream(CAPTURE, 195 * 256 + 80).decode()]) == ["FLAG{follow_the_tcp_stream}"]


# --- Seeding -------------------------------------------------------------------------------------


@pytest.fixture
def storage(tmp_path):
    with attachments_in(tmp_path / "attachments") as storage:
        yield storage


def test_seed_attaches_the_files_and_their_flags_solve_the_challenges(db, storage):
    call_command("seed")

    memory = Project.objects.get(slug="memory-forensics")
    capture = Project.objects.get(slug="packet-capture")
    (memory_file,) = ChallengeFile.objects.filter(project=memory)
    (capture_file,) = ChallengeFile.objects.filter(project=capture)
    assert (memory_file.name, memory_file.size) == ("memory.raw", len(MEMORY))
    assert memory_file.sha256 == hashlib.sha256(MEMORY).hexdigest()
    assert capture_file.sha256 == hashlib.sha256(CAPTURE).hexdigest()
    with storage.open(capture_file.file.name) as stored:
        assert stored.read() == CAPTURE
    assert memory.check_flag(flags_in(utf16_strings(MEMORY))[0])
    assert not memory.check_flag("FLAG{volatility}")  # the decoy
    assert capture.check_flag(flags_in([stream(CAPTURE, 50000).decode()])[0])
    assert "UTF-16" in memory.description  # the twist is told


def test_seed_adds_a_free_hint_and_one_for_10_points(db, storage):
    call_command("seed")

    hints = {h.project.slug: (h.position, h.cost) for h in Hint.objects.select_related("project")}
    assert hints == {"memory-forensics": (1, 0), "packet-capture": (1, 10)}


def test_a_second_seed_attaches_nothing_more(db, storage, capsys):
    call_command("seed")
    objects = stored_objects(storage)
    rows = list(ChallengeFile.objects.values_list("pk", "file", "sha256")) + list(Hint.objects.values_list("pk"))

    call_command("seed")

    assert stored_objects(storage) == objects
    assert len(objects) == 2
    assert list(ChallengeFile.objects.values_list("pk", "file", "sha256")) + list(Hint.objects.values_list("pk")) == (
        rows
    )
    out = capsys.readouterr().out
    assert "files         0 created,   2 already there" in out
    assert "nothing to do" in out
