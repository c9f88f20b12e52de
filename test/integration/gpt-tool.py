#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Edit a GPT in an image file and fix both CRC32s, to build broken-but-plausible tables.

  gpt-tool.py show IMG
  gpt-tool.py set-num-entries IMG N          NumberOfPartitionEntries (entries CRC over N entries)
  gpt-tool.py set-entry IMG INDEX [--first LBA] [--last LBA] [--type GUID]
Edits go to the primary header (LBA 1) and, if it is there and valid, to the backup header too,
so that a reader cannot simply fall back to an intact backup table. 512-byte sectors.
"""
import argparse, binascii, struct, sys, uuid

SECTOR = 512


def read_header(f, lba=1):
    f.seek(lba * SECTOR)
    hdr = bytearray(f.read(SECTOR))
    if hdr[0:8] != b"EFI PART":
        if lba == 1:
            sys.exit("no GPT header at LBA 1")
        return None
    return hdr


def headers(f):
    """[(lba, header)] for the primary and, when present, the backup header."""
    primary = read_header(f)
    out = [(1, primary)]
    alt, = struct.unpack_from("<Q", primary, 32)
    backup = read_header(f, alt)
    if backup is not None:
        out.append((alt, backup))
    return out


def fields(hdr):
    hsize, = struct.unpack_from("<I", hdr, 12)
    entries_lba, n, esize = struct.unpack_from("<QII", hdr, 72)
    return hsize, entries_lba, n, esize


def entries_crc(f, entries_lba, n, esize):
    f.seek(entries_lba * SECTOR)
    want = n * esize
    data = f.read(want)
    data += b"\0" * (want - len(data))
    return binascii.crc32(data) & 0xFFFFFFFF


def write_header(f, hdr, lba=1):
    hsize, entries_lba, n, esize = fields(hdr)
    struct.pack_into("<I", hdr, 88, entries_crc(f, entries_lba, n, esize))
    struct.pack_into("<I", hdr, 16, 0)
    struct.pack_into("<I", hdr, 16, binascii.crc32(bytes(hdr[:hsize])) & 0xFFFFFFFF)
    f.seek(lba * SECTOR)
    f.write(hdr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["show", "set-num-entries", "set-entry"])
    ap.add_argument("img")
    ap.add_argument("arg", nargs="?", type=int)
    ap.add_argument("--first", type=int)
    ap.add_argument("--last", type=int)
    ap.add_argument("--type")
    a = ap.parse_args()
    with open(a.img, "r+b") as f:
        hdrs = headers(f)
        hdr = hdrs[0][1]
        hsize, entries_lba, n, esize = fields(hdr)
        if a.cmd == "show":
            print("headers at LBA %s" % [lba for lba, _ in hdrs])
            print("entries_lba=%d n=%d esize=%d" % (entries_lba, n, esize))
            for i in range(min(n, 128)):
                f.seek(entries_lba * SECTOR + i * esize)
                e = f.read(esize)
                if e[:16] == b"\0" * 16:
                    continue
                first, last = struct.unpack_from("<QQ", e, 32)
                print(i, uuid.UUID(bytes_le=e[:16]), first, last)
        elif a.cmd == "set-num-entries":
            for lba, h in hdrs:
                struct.pack_into("<I", h, 80, a.arg)
                write_header(f, h, lba)
        else:
            for lba, h in hdrs:
                set_entry(f, h, lba, a)


def set_entry(f, hdr, lba, a):
    hsize, entries_lba, n, esize = fields(hdr)
    off = entries_lba * SECTOR + a.arg * esize
    f.seek(off)
    e = bytearray(f.read(esize))
    if a.first is not None:
        struct.pack_into("<Q", e, 32, a.first)
    if a.last is not None:
        struct.pack_into("<Q", e, 40, a.last)
    if a.type:
        e[0:16] = uuid.UUID(a.type).bytes_le
    f.seek(off)
    f.write(e)
    write_header(f, hdr, lba)


main()
