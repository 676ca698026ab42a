"""Make the files of the demo's forensics challenges: a raw memory image and a packet capture.

    python -m vulhub.seeding.make_demo_files           # (re)write vulhub/seeding/files/
    python -m vulhub.seeding.make_demo_files --check   # exit 1 if the committed files differ

The output is the same bytes on every run (a fixed random seed, fixed times), and the
generated files are committed beside this script, so `manage.py seed` needs nothing
but them. Both can be solved with everyday tools:

- memory.raw (256 KiB), "Memory Forensics": a Windows workstation's memory, in 4 KiB
  pages of noise and process memory. `strings memory.raw | grep FLAG` finds only a decoy
  typed into a browser; the implant injected into notepad.exe keeps its text the Windows
  way, in UTF-16LE, which `strings -e l memory.raw` reads: FLAG{volatile_memories}.
- ftp-session.pcap (a few KiB), "Network Traffic Analysis": a libpcap capture
  (Ethernet, IPv4, TCP with correct checksums) of an FTP session: the login in clear
  text, then a file fetched over a passive data connection holding
  FLAG{follow_the_tcp_stream} (Wireshark's Follow TCP Stream, `tcpdump -A -r`, or
  `strings`).
"""

import argparse
import random
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "files"
MEMORY_FLAG = "FLAG{volatile_memories}"
CAPTURE_FLAG = "FLAG{follow_the_tcp_stream}"
DECOY_FLAG = "FLAG{volatility}"

# --- The memory image --------------------------------------------------------------------------

PAGE = 4096
PAGES = 64

# (pid, parent pid, image name): the process list a forensic tool would rebuild
PROCESSES = [
    (4, 0, "System"),
    (312, 4, "smss.exe"),
    (428, 312, "csrss.exe"),
    (504, 312, "wininit.exe"),
    (612, 504, "services.exe"),
    (628, 504, "lsass.exe"),
    (780, 612, "svchost.exe"),
    (1204, 1180, "explorer.exe"),
    (2216, 1204, "msedge.exe"),
    (3348, 1204, "notepad.exe"),
    (3912, 2216, "updater.exe"),
]


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\x00\x00"


def ascii_z(text: str) -> bytes:
    return text.encode("ascii") + b"\x00"


def _page(*chunks: bytes, rng: random.Random, noise: int = 0) -> bytes:
    """A page holding `chunks` spread out between zeros (and a little noise when asked)."""
    body = bytearray(PAGE)
    offset = 64
    for chunk in chunks:
        body[offset : offset + len(chunk)] = chunk
        offset += len(chunk) + 16 + rng.randrange(0, 48)
    if noise:
        start = PAGE - noise
        body[start:] = rng.randbytes(noise)
    assert offset < PAGE - noise, "a page overflowed"
    return bytes(body)


def process_list_page(rng: random.Random) -> bytes:
    """EPROCESS-like records behind their pool tag "Proc": pid, parent, start time, image name."""
    started = 134_000_000_000_000_000  # a Windows FILETIME in 2025
    records = [
        b"Proc" + struct.pack("<IIQ", pid, ppid, started + n * 7_000_000_000) + name.encode().ljust(16, b"\x00")
        for n, (pid, ppid, name) in enumerate(PROCESSES)
    ]
    return _page(*records, rng=rng)


def memory_image() -> bytes:
    rng = random.Random(26)  # the issue that brought files
    special = {
        3: process_list_page(rng),
        9: _page(
            ascii_z("C:\\Windows\\explorer.exe"),
            ascii_z("C:\\Users\\jsmith\\Desktop\\quarterly-report.docx"),
            utf16("C:\\Users\\jsmith\\Downloads\\invoice-update.exe"),
            rng=rng,
            noise=512,
        ),
        17: _page(  # msedge.exe: what the user typed, a decoy for `strings | grep FLAG`
            ascii_z("https://ctf.example.edu/scoreboard"),
            ascii_z(f"https://ctf.example.edu/search?q={DECOY_FLAG}"),
            ascii_z("Cookie: session=4f1c0d2e9a7b; theme=dark"),
            rng=rng,
            noise=256,
        ),
        26: _page(  # updater.exe, the dropper: how it got into notepad.exe
            ascii_z("OpenProcess"),
            ascii_z("VirtualAllocEx"),
            ascii_z("WriteProcessMemory"),
            ascii_z("CreateRemoteThread"),
            ascii_z("target: notepad.exe (pid 3348)"),
            ascii_z("payload staged at 0x000001f4c0a10000, PAGE_EXECUTE_READWRITE"),
            rng=rng,
        ),
        41: _page(  # notepad.exe: an executable it never loaded from disk, and its secrets
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00",
            ascii_z("This program cannot be run in DOS mode."),
            utf16("implant v2 - beacon every 60 s"),
            utf16("c2: https://203.0.113.66/api/checkin"),
            utf16(f"exfil key: {MEMORY_FLAG}"),
            rng=rng,
        ),
        42: _page(utf16("Untitled - Notepad"), utf16("shopping list: milk, eggs, coffee"), rng=rng),
    }
    pages = []
    for number in range(PAGES):
        if number in special:
            pages.append(special[number])
        elif number % 3 == 0:
            pages.append(bytes(PAGE))  # free memory
        else:
            pages.append(rng.randbytes(PAGE))  # whatever was there
    return b"".join(pages)


# --- The packet capture --------------------------------------------------------------------------

START = 1_768_471_200  # 2026-01-15 10:00:00 UTC
CLIENT_MAC, SERVER_MAC = bytes.fromhex("0800275a1c3e"), bytes.fromhex("525400123502")
CLIENT_IP, SERVER_IP = bytes([10, 0, 2, 15]), bytes([198, 51, 100, 21])
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class Capture:
    """Frames of a capture, each stamped a few milliseconds after the one before."""

    frames: list[tuple[int, int, bytes]] = field(default_factory=list)
    clock_us: int = 0
    ip_id: int = 0x4A10

    def frame(self, source_ip: bytes, target_ip: bytes, tcp: bytes, delay_ms: int) -> None:
        self.clock_us += delay_ms * 1000
        self.ip_id += 1
        length, dont_fragment, ttl, tcp_protocol = 20 + len(tcp), 0x4000, 64, 6
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, length, self.ip_id, dont_fragment, ttl, tcp_protocol, 0, source_ip, target_ip
        )
        ip = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        source_mac, target_mac = (CLIENT_MAC, SERVER_MAC) if source_ip == CLIENT_IP else (SERVER_MAC, CLIENT_MAC)
        frame = target_mac + source_mac + b"\x08\x00" + ip + tcp
        self.frames.append((START + self.clock_us // 1_000_000, self.clock_us % 1_000_000, frame))

    def pcap(self) -> bytes:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # libpcap 2.4, Ethernet
        for seconds, micros, frame in self.frames:
            out.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
        return b"".join(out)


@dataclass
class Connection:
    """One TCP connection of the capture, its sequence numbers kept as a real stack would."""

    capture: Capture
    client_port: int
    server_port: int
    client_seq: int
    server_seq: int

    def _segment(self, from_client: bool, flags: int, payload: bytes = b"", delay_ms: int = 2) -> None:
        if from_client:
            source, target, sport, dport = CLIENT_IP, SERVER_IP, self.client_port, self.server_port
            seq, ack = self.client_seq, self.server_seq
        else:
            source, target, sport, dport = SERVER_IP, CLIENT_IP, self.server_port, self.client_port
            seq, ack = self.server_seq, self.client_seq
        ack = ack if flags & ACK else 0
        header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
        pseudo = source + target + struct.pack("!BBH", 0, 6, len(header) + len(payload))
        total = checksum(pseudo + header + payload)
        self.capture.frame(source, target, header[:16] + struct.pack("!H", total) + header[18:] + payload, delay_ms)
        advance = len(payload) + (1 if flags & (SYN | FIN) else 0)
        if from_client:
            self.client_seq = (self.client_seq + advance) & 0xFFFFFFFF
        else:
            self.server_seq = (self.server_seq + advance) & 0xFFFFFFFF

    def open(self) -> None:
        self._segment(True, SYN, delay_ms=40)
        self._segment(False, SYN | ACK, delay_ms=18)
        self._segment(True, ACK, delay_ms=1)

    def client(self, text: bytes, delay_ms: int = 900) -> None:
        self._segment(True, PSH | ACK, text, delay_ms)
        self._segment(False, ACK, delay_ms=18)

    def server(self, text: bytes, delay_ms: int = 20) -> None:
        self._segment(False, PSH | ACK, text, delay_ms)
        self._segment(True, ACK, delay_ms=1)

    def close(self, server_first: bool = False) -> None:
        first = not server_first
        self._segment(first, FIN | ACK, delay_ms=5)
        self._segment(not first, ACK, delay_ms=1)
        self._segment(not first, FIN | ACK, delay_ms=1)
        self._segment(first, ACK, delay_ms=18)


NOTES = (
    "Audit prep - do not share\n"
    "==========================\n"
    "* rotate the FTP password after the audit (FTP sends it in clear text!)\n"
    f"* the auditors' token: {CAPTURE_FLAG}\n"
    "* move this share to SFTP next quarter\n"
).encode()


def packet_capture() -> bytes:
    capture = Capture()
    control = Connection(capture, 49822, 21, 0x1B2E_4F60, 0x7C41_09A2)
    control.open()
    control.server(b"220 (vsFTPd 3.0.3)\r\n")
    for command, reply in (
        (b"USER alice\r\n", b"331 Please specify the password.\r\n"),
        (b"PASS wonderland-2026\r\n", b"230 Login successful.\r\n"),
        (b"SYST\r\n", b"215 UNIX Type: L8\r\n"),
        (b"TYPE I\r\n", b"200 Switching to Binary mode.\r\n"),
        (b"PASV\r\n", b"227 Entering Passive Mode (198,51,100,21,195,80).\r\n"),
    ):
        control.client(command)
        control.server(reply)
    data = Connection(capture, 49824, 195 * 256 + 80, 0x5A3D_2201, 0x0E99_7F13)
    data.open()
    control.client(b"RETR audit-notes.txt\r\n", delay_ms=15)
    control.server(f"150 Opening BINARY mode data connection for audit-notes.txt ({len(NOTES)} bytes).\r\n".encode())
    data.server(NOTES, delay_ms=3)
    data.close(server_first=True)
    control.server(b"226 Transfer complete.\r\n", delay_ms=2)
    control.client(b"QUIT\r\n", delay_ms=1400)
    control.server(b"221 Goodbye.\r\n")
    control.close(server_first=True)
    return capture.pcap()


# --- The files ---------------------------------------------------------------------------------

FILES = {"memory.raw": memory_image, "ftp-session.pcap": packet_capture}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files in place; write nothing")
    parser.add_argument("--dest", type=Path, default=FOLDER, help=f"where to write them (default: {FOLDER})")
    options = parser.parse_args(argv)
    differ = []
    for name, make in FILES.items():
        content, path = make(), options.dest / name
        if options.check:
            if not path.is_file() or path.read_bytes() != content:
                differ.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path} ({len(content)} bytes)")
    if differ:
        print(f"differ from what this script makes: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
