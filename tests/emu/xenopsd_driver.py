#!/usr/bin/env python3
"""Plays xenopsd's side of a live migration through `xmotion emu-manager`.

What xenopsd does (xapi-project/xen-api ocaml/xenopsd/xc/emu_manager.ml and
domain.ml), reproduced here against the sim backend, one save and one restore
process connected by a socketpair as xenopsd's two hosts would be:

  source xenopsd: writes the save signature and its Xenops record on the
    stream; spawns `emu-manager -controloutfd W -controlinfd R -fd F -mode
    hvm_save -domid D -live true -dm qemu`; on `prepare:xenguest` writes its
    Libxc header (type 0x00f0, length 0) and answers `done`; on `suspend:`
    answers `done` (it would suspend the domain and save QEMU); takes `info:`
    progress; on `result:` the emu-manager's part of the stream is over, so it
    writes a Qemu_trad record and End_of_image after it.
  destination xenopsd: reads the signature and records; on the Libxc header it
    spawns `emu-manager ... -mode hvm_restore -store_port S -console_port C`
    and sends `restore:xenguest`; on `result:xenguest STORE CONSOLE` it reads
    on: the Qemu_trad record and End_of_image must follow exactly, which proves
    the emu-manager read its part of the stream and not one byte more.
  abort: `abort` on the control input at a chosen moment; the emu-manager must
    then exit 0 without an error line, the source guest must run on (its
    report, an xmotion extension, says so) and the destination must fail.

Usage: xenopsd_driver.py             (all scenarios; exit status 0 = all passed)
       xenopsd_driver.py --xen DOMID --xen-config FILE --xen-name NAME --out DIR
         (dom0 of a real Xen host, as root: one live migration of domain DOMID
         through `xmotion emu-manager` on both ends, xenopsd's part played as
         above with the real domain: a PV suspend through xenstore on suspend:
         (control/shutdown = suspend, then wait for Xen's shutdown(suspend)),
         and once both ends
         said result:, `xl destroy` of the source domain and `xl unpause` of the
         new one, as xenopsd would. The restore builds the new domain through
         libxl from FILE (-xen-config, an xmotion extension, for hosts without
         xenopsd). Writes DIR/emu-driver.json.)
       xenopsd_driver.py --xen DOMID --xenops-domain TOOL --xen-name NAME --out DIR
                         [--abort prepare|precopy|suspend|restore]
         (the same, but the destination does what xenopsd does: TOOL (the lab's
         scripts/xen-lab.d/tools/xenops-domain.c) creates an empty domain NAME
         of DOMID's size with two unbound event channels before the restore
         emu-manager starts, which gets -domid/-store_port/-console_port as from
         xenopsd; after result:xenguest STORE CONSOLE the driver introduces the
         domain with those frames, destroys the source and unpauses the new one.
         --abort: xenopsd aborts at that point instead (restore: the destination
         xenopsd, before restore:xenguest); the source domain must run on and
         the created domain is destroyed.
         --stock-restore: the destination runs Xen's own restore (TOOL restore:
         xc_domain_restore, what a stock emu-manager runs) instead of xmotion's;
         the save must find no xmotion there and write Xen's stream.)
Needs XMOTION_BIN (ctest sets it).
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

XMOTION = os.environ.get("XMOTION_BIN", "xmotion")
SIGNATURE = b"XenSavedDomv2-\n"
XENOPS, LIBXC, QEMU_TRAD, END = 0x000F, 0x00F0, 0x0F00, 0xFFFF


def header(kind, length):
    return struct.pack("<qq", kind, length)


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("stream ended after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_header(sock):
    return struct.unpack("<qq", read_exact(sock, 16))


class Emu:
    """One emu-manager process and xenopsd's ends of its control pipes."""

    def __init__(self, mode, fd, tmp, name, extra, domid="7", backend=("-backend", "sim")):
        to_emu_r, self.to_emu = os.pipe()
        self.from_emu, from_emu_w = os.pipe()
        self.report = os.path.join(tmp, name + ".json")
        self.err_path = os.path.join(tmp, name + ".err")
        args = [XMOTION, "emu-manager", "-controloutfd", str(from_emu_w), "-controlinfd", str(to_emu_r),
                "-fd", str(fd), "-mode", mode, "-domid", domid, "-dm", "qemu"] + list(backend) + [
                "-report", self.report] + extra
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(args, pass_fds=(to_emu_r, from_emu_w, fd), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        os.close(to_emu_r)
        os.close(from_emu_w)
        self.lines = []
        self._buf = b""

    def say(self, line):
        os.write(self.to_emu, (line + "\n").encode())

    def next_line(self, timeout=60):
        """The next control line from the emu-manager, or None at EOF."""
        end = time.time() + timeout
        while b"\n" not in self._buf:
            import select
            r, _, _ = select.select([self.from_emu], [], [], max(0, end - time.time()))
            if not r:
                raise TimeoutError("no control line within %d s" % timeout)
            chunk = os.read(self.from_emu, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        line = line.decode()
        self.lines.append(line)
        return line

    def wait(self, timeout=60):
        return self.proc.wait(timeout=timeout)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def report_json(self):
        try:
            with open(self.report) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def xl(*args):
    """Runs xl as xenopsd would call libxl; returns (rc, output)."""
    p = subprocess.run(["xl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace").strip()


def xenops_domain(tool, *args):
    """The lab's stand-in for xenopsd's own domain handling (see --xenops-domain)."""
    p = subprocess.run([tool] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("%s %s: %s" % (os.path.basename(tool), " ".join(args), p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode().strip()


def domain_size(domid):
    """(MiB, vCPUs) of a domain as `xl list` shows them."""
    rc, out = xl("list", str(domid))
    fields = out.splitlines()[-1].split() if rc == 0 and out else []
    if len(fields) < 4:
        raise RuntimeError("xl list %s: %s" % (domid, out))
    return int(fields[2]), int(fields[3])


def domain_state(domid):
    rc, out = xl("list", str(domid))
    fields = out.splitlines()[-1].split() if rc == 0 and out else []
    return fields[4] if len(fields) >= 5 else None


def suspend_domain(domid, timeout=60):
    """What xenopsd does on `suspend:` for a guest with PV drivers: asks it
    through xenstore (control/shutdown = suspend) and waits until Xen says the
    domain shut down for suspend. Returns None, or why it did not."""
    p = subprocess.run(["xenstore-write", "/local/domain/%d/control/shutdown" % domid, "suspend"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        return "xenstore-write control/shutdown: " + p.stdout.decode(errors="replace").strip()
    end = time.time() + timeout
    while time.time() < end:
        rc, out = xl("list", str(domid))
        fields = out.splitlines()[-1].split() if rc == 0 and out else []
        if len(fields) >= 5 and "s" in fields[4]:
            return None
        time.sleep(0.05)
    return "domain %d did not suspend within %d s" % (domid, timeout)


def run(tmp, abort_at=None, memory="64M", workload="ws=48M,hot=8M,rate=50M/s", xen=None):
    """One migration; abort_at: None, 'prepare', 'precopy', 'suspend' (xenopsd's abort
    instead of its answer) or 'restore' (abort the destination before restore:xenguest).
    xen: {"domid", "config", "name"} migrates that real Xen domain instead of a sim guest."""
    src_sock, dst_sock = socket.socketpair()
    errors = []
    times = {"start": time.time()}
    # Source host: xenopsd's part of the stream before the emu-manager's.
    xenops_rec = b'((time "20261204T00:00:00Z")(word_size 64))'
    src_sock.sendall(SIGNATURE + header(XENOPS, len(xenops_rec)) + xenops_rec)
    # The save waits this long for an xmotion restore to answer its offer.
    extra_src = ["-live", "true", "-memory", memory, "-workload", workload, "-offer-wait-ms", "3000"]
    if abort_at == "precopy":
        # Round 0 alone moves 768 MiB (0.6 s at this machine's best rate); the
        # abort goes with the first progress line, 250 ms in.
        extra_src = ["-live", "true", "-memory", "1G", "-workload", "ws=768M,hot=256M,rate=4G/s",
                     "-offer-wait-ms", "3000"]
    if xen:
        save = Emu("hvm_save", src_sock.fileno(), tmp, "emu-save", ["-live", "true"], str(xen["domid"]), ())
    else:
        save = Emu("hvm_save", src_sock.fileno(), tmp, "save", extra_src)
    restore_result = {}

    def destination():
        try:
            if read_exact(dst_sock, len(SIGNATURE)) != SIGNATURE:
                raise ValueError("bad signature")
            kind, length = read_header(dst_sock)
            assert kind == XENOPS, kind
            read_exact(dst_sock, length)
            kind, length = read_header(dst_sock)
            assert (kind, length) == (LIBXC, 0), (kind, length)
            if xen and xen.get("tool"):
                # xenopsd's Domain.make: the empty domain and its two event channels.
                dom, store, console = xenops_domain(xen["tool"], "create", xen["name"], str(xen["mib"]),
                                                    str(xen["vcpus"])).split()
                restore_result["domid"] = int(dom)
                restore_result["ports"] = (int(store), int(console))
            if xen and xen.get("stock"):
                # A stock emu-manager's restore: Xen's own xc_domain_restore on the stream.
                p = subprocess.run([xen["tool"], "restore", dom, store, console], stdin=dst_sock.fileno(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
                restore_result["stock_stderr"] = p.stderr.decode(errors="replace").strip().splitlines()[-15:]
                restore_result["line"] = ("result:xenguest " + p.stdout.decode().strip() if p.returncode == 0
                                          else "error:xenguest xc_domain_restore failed")
                restore_result["rc"] = p.returncode
                if p.returncode == 0:
                    kind, length = read_header(dst_sock)
                    assert kind == QEMU_TRAD, "after Xen's stream: record type %#x" % kind
                    assert read_exact(dst_sock, length) == b"qemu-state"
                    assert read_header(dst_sock) == (END, 0)
                    restore_result["tail"] = True
                return
            if xen and xen.get("tool"):
                rest = Emu("hvm_restore", dst_sock.fileno(), tmp, "emu-restore",
                           ["-store_port", store, "-console_port", console], dom, ())
            elif xen:
                rest = Emu("hvm_restore", dst_sock.fileno(), tmp, "emu-restore",
                           ["-store_port", "1", "-console_port", "2", "-xen-config", xen["config"],
                            "-xen-name", xen["name"]], "0", ())
            else:
                rest = Emu("hvm_restore", dst_sock.fileno(), tmp, "restore",
                           ["-store_port", "1", "-console_port", "2"])
            restore_result["emu"] = rest
            if abort_at == "restore":
                rest.say("abort")
            else:
                rest.say("restore:xenguest")
            line = rest.next_line(120)
            restore_result["line"] = line
            if line and line.startswith("result:xenguest "):
                # What follows the emu-manager's part must be exactly xenopsd's next records.
                kind, length = read_header(dst_sock)
                assert kind == QEMU_TRAD, "after the emu-manager's part: record type %#x" % kind
                assert read_exact(dst_sock, length) == b"qemu-state"
                assert read_header(dst_sock) == (END, 0)
                restore_result["tail"] = True
            restore_result["rc"] = rest.wait(120)
            if abort_at == "restore":
                dst_sock.shutdown(socket.SHUT_RDWR)  # xenopsd gives up on the migration socket too
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("destination xenopsd: %r" % (e,))

    dst = threading.Thread(target=destination)
    dst.start()
    result = None
    infos = 0
    while True:
        line = save.next_line(120)
        if line is None:
            break
        if line == "prepare:xenguest":
            if abort_at == "prepare":
                save.say("abort")
                continue
            src_sock.sendall(header(LIBXC, 0))
            save.say("done")
        elif line.startswith("info:"):
            infos += 1
            if abort_at == "precopy" and infos == 1:
                save.say("abort")
        elif line == "suspend:":
            times["suspend"] = time.time()
            if xen and abort_at != "suspend":
                why = suspend_domain(xen["domid"])  # xenopsd suspends the domain here
                if why:
                    errors.append("source xenopsd: " + why)
            save.say("abort" if abort_at == "suspend" else "done")
        elif line.startswith("result:"):
            times["result"] = time.time()
            result = line
            # xenopsd's records after the emu-manager's: QEMU's state, then the end.
            src_sock.sendall(header(QEMU_TRAD, 10) + b"qemu-state" + header(END, 0))
        elif line.startswith("error:"):
            result = line
    src_rc = save.wait(120)
    if abort_at is not None:
        # xenopsd closes its end of the migration socket when it gives up.
        src_sock.shutdown(socket.SHUT_RDWR)
    dst.join(180)
    times["end"] = time.time()
    return {"src_rc": src_rc, "src_result": result, "src_lines": save.lines, "src_err": save.stderr(),
            "src_report": save.report_json(), "dst": restore_result, "errors": errors, "infos": infos,
            "times": times}


def check(name, cond, detail):
    if not cond:
        raise AssertionError("%s: %s" % (name, detail))


def scenario_complete(tmp):
    r = run(tmp)
    check("errors", not r["errors"], r)
    check("source exit", r["src_rc"] == 0, r["src_err"])
    check("source result line", r["src_result"] == "result:0 0", r["src_lines"])
    check("suspend asked", "suspend:" in r["src_lines"], r["src_lines"])
    check("progress lines", r["infos"] >= 1 and all(l.startswith("info:\\b\\b\\b\\b") for l in r["src_lines"]
                                                     if l.startswith("info:")), r["src_lines"])
    check("destination result", r["dst"].get("line") == "result:xenguest 0 0", r["dst"])
    check("stream continues after the emu-manager's part", r["dst"].get("tail"), r["dst"])
    check("destination exit", r["dst"].get("rc") == 0, r["dst"]["emu"].stderr())
    rep = r["src_report"]
    check("source report", rep and rep["result"] == "completed" and rep["digest_match"], rep)


def scenario_abort(tmp, where):
    r = run(tmp, abort_at=where)
    if where == "prepare":
        # The source gave up before its Libxc header: the destination xenopsd sees
        # the stream end and never starts a restore.
        check("destination saw the stream end", len(r["errors"]) == 1 and "EOFError" in r["errors"][0], r)
        check("no restore started", "emu" not in r["dst"], r["dst"])
    else:
        check("errors", not r["errors"], r)
    check("source exits 0 on abort", r["src_rc"] == 0, r["src_err"])
    check("no error line on abort", not any(l.startswith("error:") for l in r["src_lines"]), r["src_lines"])
    check("no result on abort", not any(l.startswith("result:") for l in r["src_lines"]), r["src_lines"])
    rep = r["src_report"]
    if where != "prepare":  # before done nothing has started: no engine, no report
        check("source report cancelled", rep and rep["result"] == "cancelled", rep)
        check("source guest runs on", rep and rep.get("source_guest") == "running", rep)
    dst = r["dst"]
    if where in ("precopy", "suspend"):
        check("destination did not restore", dst.get("line") is None or dst["line"].startswith("error:"), dst)
        check("destination fails", dst.get("rc") not in (None,) and dst["emu"].report_json()["result"] != "completed",
              dst)


def scenario_abort_destination(tmp):
    r = run(tmp, abort_at="restore")
    dst = r["dst"]
    check("destination exits 0 on abort", dst.get("rc") == 0, dst)
    check("destination no result", dst.get("line") is None, dst)
    check("source fails, guest runs on", r["src_rc"] != 0 and r["src_report"]["source_guest"] == "running", r)


def scenario_stock_source(tmp):
    """A stock emu-manager on the source writes Xen's libxc stream after the Libxc
    header: the xmotion restore must say so (error line) instead of misreading it."""
    src_sock, dst_sock = socket.socketpair()
    image = b"\xff" * 8 + b"XENF" + struct.pack(">IHHI", 3, 0, 0, 0)  # libxc image header, v3
    domain = struct.pack("<IHHII", 2, 12, 0, 4, 17)                  # x86 HVM, 4 KiB pages, Xen 4.17
    static_end = struct.pack("<II", 0x10, 0)                          # STATIC_DATA_END
    page_data = struct.pack("<II", 0x01, 16) + b"\x00" * 16           # a PAGE_DATA record starts
    src_sock.sendall(SIGNATURE + header(LIBXC, 0) + image + domain + static_end + page_data)
    read_exact(dst_sock, len(SIGNATURE))
    check("libxc header", read_header(dst_sock) == (LIBXC, 0), "")
    rest = Emu("hvm_restore", dst_sock.fileno(), tmp, "restore", ["-store_port", "1", "-console_port", "2"])
    rest.say("restore:xenguest")
    line = rest.next_line(30)
    check("error line", line is not None and line.startswith("error:") and "libxc" in line, line)
    check("exit non-zero", rest.wait(30) != 0, rest.stderr())


def scenario_silent_restore(tmp):
    """The destination is a stock restore (it reads and never answers): the save
    waits out -offer-wait-ms for an answer to its offer, then, a sim guest having
    no Xen stream to write, says so in an error line with the guest running."""
    src_sock, dst_sock = socket.socketpair()
    src_sock.sendall(SIGNATURE + header(XENOPS, 2) + b"()")
    save = Emu("hvm_save", src_sock.fileno(), tmp, "save", ["-live", "true", "-memory", "32M", "-offer-wait-ms", "1500"])
    got = bytearray()

    def read_silently():  # as xc_domain_restore would: read, never answer
        dst_sock.settimeout(10)
        try:
            while b"xmotion-offer/1" not in got:
                chunk = dst_sock.recv(1 << 16)
                if not chunk:
                    break
                got.extend(chunk)
        except OSError:
            pass
    reader = threading.Thread(target=read_silently)
    lines, t0 = [], time.time()
    while True:
        line = save.next_line(30)
        if line is None:
            break
        lines.append(line)
        if line == "prepare:xenguest":
            src_sock.sendall(header(LIBXC, 0))
            save.say("done")
            reader.start()
        elif line.startswith("error:") or line.startswith("result:"):
            break
    took = time.time() - t0
    reader.join(5)
    check("error line naming the offer", lines and lines[-1].startswith("error:") and "offer" in lines[-1], lines)
    check("waited for the answer", 1.4 < took < 20, took)
    check("the save offered xmotion in Xen's own stream", b"XENF" in bytes(got) and b"xmotion-offer/1" in bytes(got),
          bytes(got)[:80])
    check("exit non-zero", save.wait(30) != 0, save.stderr())
    rep = save.report_json()
    check("guest runs on", rep and rep.get("source_guest") == "running" and rep.get("result") == "failed", rep)


def migrate_xen(args):
    """--xen: one migration of a real domain through xmotion emu-manager on both
    ends; then what xenopsd does after both results: the source domain is
    destroyed, the new one (introduced first, when xenopsd created it)
    unpaused. With --abort, xenopsd aborts the source instead: it must run on,
    and the domain xenopsd created is destroyed. Exit status 0 when all of it
    worked."""
    xen = {"domid": args.xen, "config": args.xen_config, "name": args.xen_name, "tool": args.xenops_domain,
           "stock": args.stock_restore}
    if args.xenops_domain:
        xen["mib"], xen["vcpus"] = domain_size(args.xen)
    os.makedirs(args.out, exist_ok=True)
    r = run(args.out, abort_at=args.abort, xen=xen)
    dst = r["dst"]
    summary = {"src_rc": r["src_rc"], "src_result": r["src_result"], "src_lines": r["src_lines"],
               "dst_line": dst.get("line"), "dst_rc": dst.get("rc"), "tail": dst.get("tail", False),
               "errors": r["errors"], "infos": r["infos"], "times": r["times"], "abort": args.abort,
               "into_created_domain": dst.get("domid"), "ports": dst.get("ports")}
    if args.abort:
        rep = r["src_report"] or {}
        summary["src_report_result"] = rep.get("result")
        summary["source_guest"] = rep.get("source_guest")
        summary["src_state"] = domain_state(args.xen)
        running = (summary["src_state"] or "").strip("-") in ("r", "b", "rb")
        no_result = not (dst.get("line") or "").startswith("result:")
        if args.abort == "prepare":
            # Before done: no engine, no report; the destination xenopsd sees the stream end.
            ok = (r["src_rc"] == 0 and r["src_result"] is None and running and "emu" not in dst
                  and len(r["errors"]) == 1 and "EOFError" in r["errors"][0])
        elif args.abort == "restore":
            # The destination gives up before restore:xenguest: the source fails, its guest runs on.
            ok = (not r["errors"] and r["src_rc"] != 0 and (r["src_result"] or "").startswith("error:")
                  and rep.get("source_guest") == "running" and running and dst.get("rc") == 0 and no_result)
        else:
            ok = (not r["errors"] and r["src_rc"] == 0 and not (r["src_result"] or "").startswith("error:")
                  and rep.get("result") == "cancelled" and rep.get("source_guest") == "running"
                  and running and no_result)
        if dst.get("domid") is not None:  # xenopsd destroys the domain it made for the failed restore
            summary["destroy_created"] = xl("destroy", str(dst["domid"]))
    else:
        ok = (not r["errors"] and r["src_rc"] == 0 and r["src_result"] == "result:0 0"
              and (dst.get("line") or "").startswith("result:xenguest ") and dst.get("tail")
              and dst.get("rc") == 0)
        if ok and dst.get("domid") is not None:
            store_mfn, console_mfn = dst["line"].split()[1:3]
            summary["rings"] = [int(store_mfn), int(console_mfn)]
            try:
                xenops_domain(args.xenops_domain, "introduce", str(dst["domid"]), store_mfn, str(dst["ports"][0]),
                              console_mfn, str(dst["ports"][1]))
                summary["destroy"] = xl("destroy", str(args.xen))
                xenops_domain(args.xenops_domain, "unpause", str(dst["domid"]))
                summary["unpause"] = (0, "")
            except RuntimeError as e:
                summary["unpause"] = (1, str(e))
            summary["unpaused_at"] = time.time()
            ok = summary.get("destroy", (1,))[0] == 0 and summary["unpause"][0] == 0 and int(store_mfn) != 0
        elif ok:
            summary["destroy"] = xl("destroy", str(args.xen))
            summary["unpause"] = xl("unpause", args.xen_name)
            summary["unpaused_at"] = time.time()
            ok = summary["destroy"][0] == 0 and summary["unpause"][0] == 0
        elif dst.get("domid") is not None:
            summary["destroy_created"] = xl("destroy", str(dst["domid"]))
    summary["ok"] = bool(ok)
    summary["stock_stderr"] = dst.get("stock_stderr")
    name = "emu-driver.json" if not args.abort else "emu-driver-abort-%s.json" % args.abort
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="Plays xenopsd's side of xmotion emu-manager migrations.")
    ap.add_argument("--xen", type=int, help="migrate this real Xen domain (dom0, root) instead of the sim scenarios")
    ap.add_argument("--xen-config", help="libxl config (JSON) the restore builds the new domain from")
    ap.add_argument("--xenops-domain", help="create the new domain as xenopsd does, with this tool (the lab's "
                    "xenops-domain), and restore into it")
    ap.add_argument("--abort", choices=["prepare", "precopy", "suspend", "restore"],
                    help="--xen: xenopsd aborts there (restore: the destination's, before restore:xenguest)")
    ap.add_argument("--stock-restore", action="store_true",
                    help="--xenops-domain: the destination is a stock restore (Xen's xc_domain_restore, through "
                    "the tool), not xmotion: the save must notice and write Xen's own stream")
    ap.add_argument("--xen-name", help="the new domain's name")
    ap.add_argument("--out", default=".", help="where reports and emu-driver.json go (--xen)")
    args = ap.parse_args()
    if args.xen is not None:
        if not args.xen_name or bool(args.xen_config) == bool(args.xenops_domain):
            ap.error("--xen needs --xen-name and one of --xen-config, --xenops-domain")
        return migrate_xen(args)
    scenarios = [("complete", scenario_complete),
                 ("abort before done (prepare)", lambda t: scenario_abort(t, "prepare")),
                 ("abort during pre-copy", lambda t: scenario_abort(t, "precopy")),
                 ("abort instead of done after suspend:", lambda t: scenario_abort(t, "suspend")),
                 ("abort the restore before restore:xenguest", scenario_abort_destination),
                 ("stock source into xmotion restore", scenario_stock_source),
                 ("xmotion save facing a silent (stock) restore", scenario_silent_restore)]
    failed = 0
    for name, fn in scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            try:
                fn(tmp)
                print("ok   %-45s %.1f s" % (name, time.time() - t0))
            except Exception as e:  # noqa: BLE001
                failed += 1
                print("FAIL %-45s %s" % (name, e))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
