"""The nested-Xen lab's judge: what dom0 brought back -> checks and an outcome.

Pure functions over the files dom0 wrote (facts, steps.tsv, the guests'
console logs, xmotion's JSON reports), so they are tested on hand-made inputs
(tests/lab/judge_test.py) without running a lab.

Outcomes (results.json "outcome"):
  passed       every check passed
  guest-panic  the guest's kernel crashed (its console says so) and every
               failed check is one a dead guest explains: the migration it
               was in, the ones after it, the ticks that never came. Under
               QEMU's emulated SVM the guest kernel has panicked with no
               migration running (scripts/xen-lab.d/README.md), so this is
               kept apart from a migration failure.
  failed       anything else, including a failed check a dead guest does not
               explain (a digest mismatch, memory the guest found corrupted,
               a half-built destination left behind, a migration that failed
               while the guest was demonstrably alive).
CI retries the whole lab (at most three times) only for "guest-panic" (retry_allowed).
"""
import datetime
import json
import os
import re

GUEST_OOPS = re.compile(r"\] (BUG: |Oops|Kernel panic|general protection fault|stack guard page)")
TICK = re.compile(r"XTICK seq=(\d+) boot_ms=(\d+) rt_ms=(\d+) writes=(\d+) verified=(\d+) passes=(\d+) errors=(\d+)")

# Check groups: which part of the lab a check belongs to.
G_GUEST, G_DOM0, G_XL, G_XM, G_ABORT, G_CRASHED, G_LAB = "guest", "dom0", "xl", "xmotion", "abort", "crashed", "lab"
G_EMU = "emu-manager"


def deliberate_crash_cutoff(out):
    """Console line counts taken just before the lab crashed the guest on
    purpose (step xm-crashed), or None: the oops that crash makes the guest
    kernel print must not count as the guest's own."""
    path = os.path.join(out, "console-lines-before-deliberate-crash.txt")
    if not os.path.exists(path):
        return None
    cut = {}
    with open(path) as f:
        for line in f:
            name, _, count = line.strip().rpartition(" ")
            if name and count.isdigit():
                cut[name] = int(count)
    return cut


def read_consoles(out, lost=()):
    """Every tick from every guest console log, by sequence number; lines the
    guest's memory check flagged; kernel crash lines (not those of the lab's
    deliberate crash); and where the first crash happened (the last tick seq
    before it in the same console). A crash that belongs to a lost attempt
    (lost_attempts(): a comparison's migration run again on a fresh guest) is
    given to that attempt, not counted against the run."""
    ticks, bad, oops = {}, [], []
    crash = None
    cdir = os.path.join(out, "console")
    cut = deliberate_crash_cutoff(out)
    for fn in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        last_seq = None
        with open(os.path.join(cdir, fn), errors="replace") as f:
            for number, line in enumerate(f):
                if cut is not None and number >= cut.get(fn, 0):
                    break
                m = TICK.search(line)
                if m:
                    seq, boot, rt, _w, _v, passes, err = map(int, m.groups())
                    ticks.setdefault(seq, {"boot": boot, "rt": rt, "passes": passes, "errors": err, "log": fn})
                    last_seq = seq
                elif "XTICK-BAD" in line or "XTICK-FATAL" in line:
                    bad.append(line.strip())
                elif GUEST_OOPS.search(line):
                    owner = next((a for a in lost if lost_attempt_owns(a, fn, last_seq)), None)
                    if owner is not None:
                        owner.setdefault("guest_crash", line.strip()[:200])
                        continue
                    oops.append(f"{fn}: {line.strip()}")
                    if crash is None:
                        crash = {"console": fn, "after_seq": last_seq, "line": line.strip()[:200]}
    if crash is not None and crash["after_seq"] is None and ticks:
        # It died in a console with no tick yet (right after arriving): after the newest tick anywhere.
        crash["after_seq"] = max(ticks)
    return ticks, bad, oops, crash


def lost_attempt_owns(a, console, last_seq):
    """Whether a crash printed in `console` after tick `last_seq` is lost
    attempt `a`'s: in a domain it destroyed, or, when it found none left (a
    guest that reboots destroys itself: the lab's on_reboot = "destroy"), in
    its tick window."""
    if last_seq is not None and last_seq < a["seq_before"]:
        return False
    if a["consoles"]:
        return console in a["consoles"]
    return last_seq is not None and a["seq_after"] is not None and last_seq <= a["seq_after"]


def lost_attempts(facts):
    """The comparison migrations dom0 ran again because the guest was gone
    (facts sc_<engine>_<link>_lost<k>: rc, the tick window, the domains it
    destroyed before starting a fresh guest), in dom0's order."""
    out = []
    for key, value in facts.items():
        m = re.fullmatch(r"(sc_([a-z-]+)_([a-z0-9]+))_lost(\d+)", key)  # warmup-xl too
        if not m:
            continue
        kv = dict(part.split("=", 1) for part in value.split() if "=" in part)
        def num(k):
            try:
                return int(kv[k])
            except (KeyError, ValueError):
                return None
        out.append({"engine": m.group(2), "link": m.group(3), "attempt": int(m.group(4)), "rc": num("rc"),
                    "seq_before": num("seq_before") or 0, "seq_after": num("seq_after"),
                    "domains": [d for d in kv.get("domains", "").split(",") if d],
                    "consoles": [f"guest-{d}.log" for d in kv.get("domains", "").split(",") if d]})
    return out


def window(ticks, facts, prefix):
    """The ticks printed while a migration ran: by sequence numbers when dom0
    recorded them, else by time (the guest's CLOCK_REALTIME and dom0's clock
    both come from Xen's wallclock)."""
    try:
        return int(facts[prefix + "_seq_before"]), int(facts[prefix + "_seq_after"])
    except (KeyError, ValueError):
        pass
    try:
        t0 = float(facts[prefix + "_t0"]) * 1000 - 1000
        t1 = float(facts[prefix + "_t1"]) * 1000 + 5000
    except (KeyError, ValueError):
        return None, None
    seqs = [s for s, t in ticks.items() if t0 <= t["rt"] <= t1]
    return (min(seqs), max(seqs)) if seqs else (None, None)


def guest_view(ticks, seq_from, seq_to, tick_ms):
    """Downtime as the guest saw it: the longest gap between consecutive ticks
    printed between seq_from and seq_to, less the tick period."""
    if seq_from is None or seq_to is None:
        return None
    seqs = sorted(s for s in ticks if seq_from <= s <= seq_to)
    if len(seqs) < 2:
        return None
    worst, worst_rt, missing, at = 0, 0, 0, None
    for a, b in zip(seqs, seqs[1:]):
        missing += b - a - 1
        gap = (ticks[b]["boot"] - ticks[a]["boot"]) - (b - a - 1) * tick_ms
        gap_rt = (ticks[b]["rt"] - ticks[a]["rt"]) - (b - a - 1) * tick_ms
        if gap > worst:
            worst, at = gap, (a, b)
        worst_rt = max(worst_rt, gap_rt)
    return {"downtime_ms": max(0, worst - tick_ms), "max_tick_gap_ms": worst,
            "max_tick_gap_realtime_ms": worst_rt, "gap_between_seqs": at, "ticks": len(seqs),
            "missing_lines": missing}


XS_TICK = re.compile(r"^\[(\d{8}T\d\d:\d\d:\d\d\.\d+)Z\]\s+D(\d+)\s+write\s+data/xtick (\d+)\s*$")
# The toolstack asking a guest to suspend (libxl's cooperative suspend, both engines).
XS_SUSPEND = re.compile(r"^\[(\d{8}T\d\d:\d\d:\d\d\.\d+)Z\]\s+\S+\s+write\s+/local/domain/(\d+)/control/shutdown suspend\s*$")


def xs_ms(stamp):
    return datetime.datetime.strptime(stamp, "%Y%m%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000


def xenstore_log(out):
    """From xenstored's access log (rotated parts first), on dom0's clock in ms:
    when each tick reached xenstored (the ticker also writes data/xtick = seq),
    {seq: {"boot": ms, "rt": ms, "domid": writer}} (the shape guest_view
    reads), and the suspend requests, [(ms, domid)] in order."""
    def part(name):
        tail_ = name.rsplit(".log", 1)[1].lstrip(".")
        return -int(tail_) if tail_.isdigit() else 0
    names = sorted((n for n in os.listdir(out) if n.startswith("xenstored-access.log")), key=part) \
        if os.path.isdir(out) else []
    ticks, suspends = {}, []
    for name in names:
        with open(os.path.join(out, name), errors="replace") as f:
            for line in f:
                m = XS_TICK.match(line)
                if m:
                    t = xs_ms(m.group(1))
                    ticks.setdefault(int(m.group(3)), {"boot": t, "rt": t, "domid": int(m.group(2))})
                    continue
                m = XS_SUSPEND.match(line)
                if m:
                    suspends.append((xs_ms(m.group(1)), int(m.group(2))))
    return ticks, suspends


def clock_step(ticks, xs_ticks, gap, n=20):
    """How far the guest's clock jumped across the outage between ticks
    gap = (a, b). Each tick gives guest CLOCK_REALTIME - xenstored's stamp =
    the clocks' offset less the write's trip to xenstored, so the largest of
    up to n ticks is the offset (the least delayed write; the first ticks
    after a resume take up to 300 ms): the one from b on, less the one up to
    a. A resume re-reads Xen's wallclock; a guest whose clock was off before
    (a PVH guest's is 250-450 ms behind dom0's from boot in this lab, an HVM
    guest's up to a second) counts the correction as time suspended, in
    BOOTTIME too. The guest's own tick gap includes that step; the step is
    not downtime."""
    if not gap or not xs_ticks:
        return None
    a, b = gap
    both = sorted(q for q in ticks if q in xs_ticks)

    def offset(seqs):
        return max((ticks[q]["rt"] - xs_ticks[q]["rt"] for q in seqs), default=None)
    before, after = offset([q for q in both if q <= a][-n:]), offset([q for q in both if q >= b][:n])
    return None if before is None or after is None else round(after - before)


def dom0_view(xs, seq_from, seq_to, tick_ms):
    """guest_view on dom0's clock, plus `suspend_to_first_tick_ms`: from the
    toolstack's suspend request in that window to the first tick written by
    another domain (the guest in its new home). Unlike the tick gap it does not
    depend on where in the tick period the outage fell (up to one period of
    error); it includes the guest's own suspend and resume."""
    ticks, suspends = xs
    v = guest_view(ticks, seq_from, seq_to, tick_ms)
    if v is None:
        return None
    v["suspend_to_first_tick_ms"] = None
    # The guest may tick between the request and its suspend: the request is
    # the last one before the longest gap ends, anywhere in the window.
    t0, t1 = min(x["rt"] for q, x in ticks.items() if q >= seq_from), ticks[v["gap_between_seqs"][1]]["rt"]
    reqs = [(t, d) for t, d in suspends if t0 <= t <= t1]
    if reqs:
        t, domid = reqs[-1]
        after = [x["rt"] for x in ticks.values() if x["rt"] > t and x["domid"] != domid]
        if after:
            v["suspend_to_first_tick_ms"] = round(min(after) - t)
    return v


def with_clock_step(gv, ticks, xs):
    """guest_view plus the guest's clock step across its longest gap and that
    gap without it (`downtime_without_clock_step_ms`)."""
    if gv is None:
        return None
    step = clock_step(ticks, xs[0], gv["gap_between_seqs"])
    gv["guest_clock_step_ms"] = step
    # Not clamped: a negative figure would say the step was misread, and should show.
    gv["downtime_without_clock_step_ms"] = None if step is None else gv["downtime_ms"] - step
    return gv


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip() for line in f.readlines()[-n:]]
    except OSError:
        return []


def read_facts(out):
    facts = {}
    if os.path.exists(os.path.join(out, "facts")):
        with open(os.path.join(out, "facts")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                facts[k] = v
    steps = []
    if os.path.exists(os.path.join(out, "steps.tsv")):
        with open(os.path.join(out, "steps.tsv")) as f:
            lines = f.read().splitlines()
        for line in lines:
            name, t0, t1, rc = line.split("\t")
            steps.append({"step": name, "where": "dom0", "seconds": round(float(t1) - float(t0), 1), "rc": int(rc)})
    return facts, steps


def analyse(out, settings):
    """Checks over dom0's results folder. Each check: name, ok, detail, group,
    and for the migrations the tick window (seq_before, seq_after) it ran in,
    which classify() compares with when the guest crashed."""
    facts, steps = read_facts(out)
    lost = lost_attempts(facts)
    ticks, bad, oops, crash = read_consoles(out, lost)
    tick_ms = int(settings["GUEST_TICK_MS"])
    after_ticks = int(settings["AFTER_TICKS"])
    checks = []

    def check(name, ok, detail="", group=G_LAB, win=None, guest_independent=False):
        checks.append({"check": name, "ok": bool(ok), "detail": detail, "group": group,
                       "window": list(win) if win else None, "guest_independent": guest_independent})

    def num(k, default=None):
        try:
            return int(facts[k])
        except (KeyError, ValueError):
            return default

    max_err = max((t["errors"] for t in ticks.values()), default=None)
    max_pass = max((t["passes"] for t in ticks.values()), default=0)
    check("guest ticks seen", len(ticks) > 0, f"{len(ticks)} ticks", G_GUEST)
    check("guest kernel never crashed", not oops, "; ".join(oops[:2]), G_GUEST)
    # Errors the guest found in its own memory are never a crash's doing: it
    # reports them on ticks printed while it was alive.
    check("guest memory self-check", max_err == 0 and not bad,
          f"errors={max_err}, full verify passes={max_pass}" + (f"; {bad[:3]}" if bad else ""), G_GUEST,
          guest_independent=bool(bad) or (max_err or 0) > 0)

    res = {"facts": facts, "dom0_steps": steps, "ticks": len(ticks), "guest_crash": crash}
    if lost:
        res["lost_attempts"] = [{k: v for k, v in a.items() if k != "consoles"} for a in lost]
    ran = {st["step"] for st in steps}
    for name in ("xen-daemons", "guest-create", "guest-ticks"):
        rc = next((st["rc"] for st in steps if st["step"] == name), None)
        # Xen's daemons and the domain's creation do not depend on the guest kernel.
        check(f"dom0 step {name}", rc == 0, "did not run" if rc is None else f"rc={rc}", G_DOM0,
              guest_independent=name != "guest-ticks" and rc is not None)
    compare = compare_runs(settings)  # --scale and --hvm run their own migrations instead
    # The guest's clock and dom0's can disagree across a migration (an HVM
    # guest's until its first resume): each gap is also read on dom0's.
    xs = xenstore_log(out)
    if settings["RUN_XL"] == "1" and "xl-migrate" not in ran and not compare:
        check("xl migrate ran", False, "dom0 never got to it", G_XL)
    if settings["RUN_XM"] == "1" and "xm-migrate" not in ran and not compare:
        check("xmotion migration ran", False, "dom0 never got to it", G_XM)
    if settings["RUN_XL"] == "1" and "xl-migrate" in ran:
        s0, s1 = window(ticks, facts, "xl")
        gv = with_clock_step(guest_view(ticks, s0, s1, tick_ms), ticks, xs)
        xl = {"rc": num("xl_rc"), "total_s": round(float(facts["xl_t1"]) - float(facts["xl_t0"]), 2),
              "bytes": num("xl_bytes"), "guest": gv, "guest_dom0": dom0_view(xs, s0, s1, tick_ms),
              "domid_before": facts.get("xl_domid_before"),
              "domid_after": facts.get("xl_domid_after"), "state_after": facts.get("xl_state_after")}
        res["xl_migrate"] = xl
        w = (s0, s1)
        check("xl migrate: exit 0", xl["rc"] == 0, f"rc={xl['rc']}", G_XL, w)
        check("xl migrate: new domain", xl["domid_after"] and xl["domid_after"] != xl["domid_before"],
              f"domid {xl['domid_before']} -> {xl['domid_after']}", G_XL, w)
        check("xl migrate: guest ticks continue", s0 is not None and s1 is not None and
              s1 >= s0 + after_ticks, f"seq {s0} -> {s1}", G_XL, w)
    if settings["RUN_XM"] == "1" and "xm-migrate" in ran:
        send = load_json(os.path.join(out, "xm-send.json")) or {}
        recv = load_json(os.path.join(out, "xm-recv.json")) or {}
        s0, s1 = window(ticks, facts, "xm")
        gv = with_clock_step(guest_view(ticks, s0, s1, tick_ms), ticks, xs)
        xm = {"send_rc": num("xm_send_rc"), "recv_rc": num("xm_recv_rc"),
              "total_s": round(float(facts["xm_t1"]) - float(facts["xm_t0"]), 2) if "xm_t1" in facts else None,
              "send_report": send, "recv_report": recv, "guest": gv,
              "guest_dom0": dom0_view(xs, s0, s1, tick_ms), "src_domid": facts.get("xm_src_domid"), "dst_domid": facts.get("xm_dst_domid"),
              "src_gone": facts.get("xm_src_gone") == "1", "state_after": facts.get("xm_state_after"),
              "send_stderr": tail(os.path.join(out, "xm-send.err")),
              "recv_stderr": tail(os.path.join(out, "xm-recv.err"))}
        res["xmotion"] = xm
        w = (s0, s1)
        both_done = send.get("result") == "completed" and recv.get("result") == "completed"
        check("xmotion: send exit 0", xm["send_rc"] == 0, f"rc={xm['send_rc']}", G_XM, w)
        check("xmotion: receive exit 0", xm["recv_rc"] == 0, f"rc={xm['recv_rc']}", G_XM, w)
        check("xmotion: completed", both_done,
              f"send={send.get('result')} receive={recv.get('result')} {send.get('error', '') or recv.get('error', '')}",
              G_XM, w)
        # A completed migration whose digests differ, or that left the source
        # domain behind, is wrong whatever the guest did afterwards.
        check("xmotion: digest_match", send.get("digest_match") is True and recv.get("digest_match") is True,
              f"send={send.get('digest_match')} receive={recv.get('digest_match')}", G_XM, w,
              guest_independent=both_done)
        check("xmotion: destination domain exists", bool(xm["dst_domid"]), f"guest-xm domid={xm['dst_domid']}", G_XM, w)
        check("xmotion: source domain gone", xm["src_gone"], f"domid {xm['src_domid']}", G_XM, w,
              guest_independent=both_done)
        on_dst = sorted(q for q, t in ticks.items() if t["log"] == "guest-guest-xm.log" and q > (s0 or 0))
        check("xmotion: guest ticks continue on the destination",
              len(on_dst) >= after_ticks,
              f"{len(on_dst)} ticks in guest-xm's console after seq {s0}"
              + (f" (seq {on_dst[0]}..{on_dst[-1]})" if on_dst else ""), G_XM, w)
    if settings.get("EMU") == "1" and settings["RUN_XM"] == "1" and "xm-migrate" in ran and "emu-manager" not in ran:
        check("emu-manager migration ran", False, "dom0 never got to it", G_EMU)
    if "emu-manager" in ran:
        drv = load_json(os.path.join(out, "emu-driver.json")) or {}
        save = load_json(os.path.join(out, "emu-save.json")) or {}
        restore = load_json(os.path.join(out, "emu-restore.json")) or {}
        s0, s1 = num("emu_seq_before"), num("emu_seq_after")
        gv = guest_view(ticks, s0, s1, tick_ms)
        em = {"rc": num("emu_rc"), "driver": drv, "save_report": save, "restore_report": restore, "guest": gv,
              "total_s": round(float(facts["emu_t1"]) - float(facts["emu_t0"]), 2) if "emu_t1" in facts else None,
              "src_domid": facts.get("emu_src_domid"), "dst_domid": facts.get("emu_dst_domid"),
              "src_gone": facts.get("emu_src_gone") == "1",
              "save_stderr": tail(os.path.join(out, "emu-save.err")),
              "restore_stderr": tail(os.path.join(out, "emu-restore.err"))}
        res["emu_manager"] = em
        w = (s0, s1)
        lines = drv.get("src_lines") or []
        check("emu-manager: xenopsd's driver saw both results", drv.get("ok") is True,
              f"rc={em['rc']} source {drv.get('src_result')} destination {drv.get('dst_line')} {drv.get('errors')}",
              G_EMU, w)
        check("emu-manager: suspend: asked of xenopsd", "suspend:" in lines, " ".join(lines)[:200], G_EMU, w,
              guest_independent=True)
        check("emu-manager: stream ends where xenopsd's next record starts", drv.get("tail") is True, "", G_EMU, w,
              guest_independent=True)
        check("emu-manager: digest_match", save.get("digest_match") is True and restore.get("digest_match") is True,
              f"save={save.get('digest_match')} restore={restore.get('digest_match')}", G_EMU, w,
              guest_independent=drv.get("ok") is True)
        check("emu-manager: source domain gone, new one exists", em["src_gone"] and bool(em["dst_domid"]),
              f"domid {em['src_domid']} -> {em['dst_domid']}", G_EMU, w)
        on_dst = sorted(q for q, t in ticks.items() if t["log"] == "guest-guest-emu.log" and q > (s0 or 0))
        check("emu-manager: guest ticks continue on the destination", len(on_dst) >= after_ticks,
              f"{len(on_dst)} ticks in guest-emu's console after seq {s0}", G_EMU, w)
    if settings.get("EMU") == "1" and settings["RUN_XM"] == "1" and "xl-migrate" in ran and "emu-xenopsd" not in ran:
        check("emu-manager into xenopsd's domain ran", False, "dom0 never got to it", G_EMU)
    if "emu-xenopsd" in ran:
        emux_results(out, facts, ticks, tick_ms, after_ticks, res, check)
    if settings["RUN_XM"] == "1" and "xm-abort" in ran:
        ab = {"receiver_killed": facts.get("abort_receiver_killed") == "1",
              "send_rc": num("abort_send_rc"), "src": facts.get("abort_src_name"),
              "src_alive": facts.get("abort_src_alive") == "1", "src_state": facts.get("abort_src_state"),
              "dst_left": facts.get("abort_dst_left") == "1",
              "seq": [num("abort_seq_before_wait"), num("abort_seq_after")],
              "send_report": load_json(os.path.join(out, "abort-send.json")),
              "send_stderr": tail(os.path.join(out, "abort-send.err"))}
        res["xmotion_abort"] = ab
        a0, a1 = ab["seq"]
        w = (a0, a1)
        check("abort: receiver killed before GO", ab["receiver_killed"],
              "the source never started pre-copy" if not ab["receiver_killed"] else "", G_ABORT, w)
        check("abort: send fails", ab["send_rc"] not in (None, 0), f"rc={ab['send_rc']}", G_ABORT, w)
        check("abort: source domain still running",
              ab["src_alive"] and (ab["src_state"] or "").strip("-") in ("r", "b", "rb", ""),
              f"{ab['src']} state={ab['src_state']}", G_ABORT, w)
        check("abort: source guest keeps ticking", a0 is not None and a1 is not None and
              a1 >= a0 + after_ticks, f"seq {a0} -> {a1}", G_ABORT, w)
        check("abort: no half-built destination left", not ab["dst_left"], "", G_ABORT, w,
              guest_independent=True)
    if settings["RUN_XM"] == "1" and "xm-crashed" in ran:
        # A crashed source domain: xmotion must refuse it at once, in one line,
        # and report the hypervisor's view. Independent of how the guest died.
        rep = load_json(os.path.join(out, "crashed-send.json")) or {}
        err = tail(os.path.join(out, "crashed-send.err"), 5)
        cr = {"state": facts.get("crashed_state"), "injections": num("crashed_injections"),
              "send_rc": num("crashed_send_rc"), "send_ms": num("crashed_send_ms"),
              "report": rep, "stderr": err}
        res["xmotion_crashed_source"] = cr
        check("crashed source: the domain is crashed", "c" in (cr["state"] or ""),
              f"xl list state {cr['state']} after {cr['injections']} injection(s)", G_CRASHED,
              guest_independent=True)
        check("crashed source: send exits 1 at once", cr["send_rc"] == 1 and (cr["send_ms"] or 1e9) < 10000,
              f"rc={cr['send_rc']} in {cr['send_ms']} ms", G_CRASHED, guest_independent=True)
        check("crashed source: stderr says crashed", any("crashed" in line for line in err),
              " | ".join(err)[:200], G_CRASHED, guest_independent=True)
        check("crashed source: report source_guest crashed", rep.get("source_guest") == "crashed",
              f"source_guest={rep.get('source_guest')}", G_CRASHED, guest_independent=True)
    if settings.get("GUEST_TYPE") == "hvm" and settings["RUN_XM"] == "1":
        pv_refused_results(out, facts, "pv-refused" in ran, res, check)
    if compare:
        compare_results(out, settings, facts, ticks, xs, tick_ms, after_ticks, res, check)
    res["checks"] = checks
    return res, steps


def emux_results(out, facts, ticks, tick_ms, after_ticks, res, check):
    """--emu's emu-xenopsd step: xenopsd (the driver) aborts four migrations of
    the guest (one per phase), then one restores into a domain created as
    xenopsd creates it, then one goes into a stock restore."""
    def num(k):
        try:
            return int(facts[k])
        except (KeyError, ValueError):
            return None
    aborts = {}
    for where in ("prepare", "precopy", "suspend", "restore"):
        drv = load_json(os.path.join(out, f"emux-abort-{where}", f"emu-driver-abort-{where}.json")) or {}
        s0, s1 = num(f"emux_abort_{where}_seq_before"), num(f"emux_abort_{where}_seq_after")
        aborts[where] = {"rc": num(f"emux_abort_{where}_rc"), "driver": drv, "seq": [s0, s1]}
        w = (s0, s1)
        check(f"emu-manager abort ({where}): the source domain runs on, no restore result", drv.get("ok") is True,
              f"rc={aborts[where]['rc']} result={drv.get('src_report_result')} source_guest={drv.get('source_guest')} "
              f"state={drv.get('src_state')} lines={drv.get('src_lines')} {drv.get('errors')}", G_EMU, w)
        check(f"emu-manager abort ({where}): guest keeps ticking", s0 is not None and s1 is not None and s1 >= s0 + 10,
              f"seq {s0} -> {s1}", G_EMU, w)
    drv = load_json(os.path.join(out, "emux", "emu-driver.json")) or {}
    save = load_json(os.path.join(out, "emux", "emu-save.json")) or {}
    restore = load_json(os.path.join(out, "emux", "emu-restore.json")) or {}
    s0, s1 = num("emux_seq_before"), num("emux_seq_after")
    w = (s0, s1)
    em = {"rc": num("emux_rc"), "driver": drv, "aborts": aborts, "guest": guest_view(ticks, s0, s1, tick_ms),
          "total_s": round(float(facts["emux_t1"]) - float(facts["emux_t0"]), 2) if "emux_t1" in facts else None,
          "save_report": save, "restore_report": restore, "src_domid": facts.get("emux_src_domid"),
          "dst_domid": facts.get("emux_dst_domid"), "src_gone": facts.get("emux_src_gone") == "1",
          "replaced_guest": facts.get("emux_replaced_guest") == "1"}
    res["emu_manager_xenopsd_domain"] = em
    check("emu-manager into xenopsd's domain: restored, introduced, unpaused", drv.get("ok") is True,
          f"rc={em['rc']} into domain {drv.get('into_created_domain')} {drv.get('dst_line')} rings={drv.get('rings')} "
          f"{drv.get('errors')}", G_EMU, w)
    check("emu-manager into xenopsd's domain: digest_match",
          save.get("digest_match") is True and restore.get("digest_match") is True,
          f"save={save.get('digest_match')} restore={restore.get('digest_match')}", G_EMU, w,
          guest_independent=drv.get("ok") is True)
    check("emu-manager into xenopsd's domain: it is the domain xenopsd created, the source is gone",
          em["src_gone"] and em["dst_domid"] is not None and str(drv.get("into_created_domain")) == em["dst_domid"],
          f"created {drv.get('into_created_domain')}, guest-xo is {em['dst_domid']}, source gone {em['src_gone']}",
          G_EMU, w)
    on_dst = sorted(q for q, t in ticks.items() if t["log"] == "guest-guest-xo.log" and q > (s0 or 0))
    check("emu-manager into xenopsd's domain: guest ticks continue there", len(on_dst) >= after_ticks,
          f"{len(on_dst)} ticks in guest-xo's console after seq {s0}", G_EMU, w)
    if drv.get("ok") is not True:
        return  # the stock-restore migration runs only after this one
    sdrv = load_json(os.path.join(out, "emus", "emu-driver.json")) or {}
    ssave = load_json(os.path.join(out, "emus", "emu-save.json")) or {}
    s0, s1 = num("emus_seq_before"), num("emus_seq_after")
    w = (s0, s1)
    res["emu_manager_stock_restore"] = {
        "rc": num("emus_rc"), "driver": sdrv, "save_report": ssave, "guest": guest_view(ticks, s0, s1, tick_ms),
        "total_s": round(float(facts["emus_t1"]) - float(facts["emus_t0"]), 2) if "emus_t1" in facts else None}
    check("emu-manager save into a stock restore: Xen's own restore took the stream, guest introduced and unpaused",
          sdrv.get("ok") is True, f"rc={num('emus_rc')} {sdrv.get('dst_line')} {sdrv.get('errors')} "
          f"{(sdrv.get('stock_stderr') or [])[-3:]}", G_EMU, w)
    check("emu-manager save into a stock restore: the save wrote Xen's stream (no xmotion peer)",
          ssave.get("mode") == "xen-stream" and ssave.get("result") == "completed",
          f"mode={ssave.get('mode')} result={ssave.get('result')} {ssave.get('error', '')}", G_EMU, w,
          guest_independent=True)
    on_dst = sorted(q for q, t in ticks.items() if t["log"] == "guest-guest-stock.log" and q > (s0 or 0))
    check("emu-manager save into a stock restore: guest ticks continue there", len(on_dst) >= after_ticks,
          f"{len(on_dst)} ticks in guest-stock's console after seq {s0}", G_EMU, w)


def compare_runs(settings):
    """The comparison's migrations, (engine, link) in dom0's order: the host's
    COMPARE_RUNS ("xl:loopback xmotion:loopback ..."), empty for the CI lab."""
    return [tuple(r.split(":", 1)) for r in (settings.get("COMPARE_RUNS") or "").split()]


def pv_refused_results(out, facts, ran, res, check):
    """--hvm: a PV domain (paused, never run) must be refused by xmotion send
    before it connects anywhere, in one line naming PV, and stay as it was."""
    if not ran:
        check("PV refused: ran", False, "dom0 never got to it", G_XM, guest_independent=True)
        return
    rep = load_json(os.path.join(out, "pv-send.json")) or {}
    err = tail(os.path.join(out, "pv-send.err"), 5)
    pv = {"domid": facts.get("pv_domid"), "state_before": facts.get("pv_state_before"),
          "state_after": facts.get("pv_state_after"), "domid_after": facts.get("pv_domid_after"),
          "send_rc": facts.get("pv_send_rc"), "send_ms": facts.get("pv_send_ms"), "report": rep, "stderr": err}
    res["xmotion_pv_source"] = pv
    ms = int(pv["send_ms"]) if (pv["send_ms"] or "").isdigit() else None
    check("PV refused: a PV domain exists", bool(pv["domid"]), f"xl create -p rc={facts.get('pv_create_rc')}",
          G_DOM0, guest_independent=True)
    check("PV refused: send exits 1 at once", pv["send_rc"] == "1" and ms is not None and ms < 10000,
          f"rc={pv['send_rc']} in {ms} ms", G_XM, guest_independent=True)
    check("PV refused: stderr names a PV guest", any("PV guest" in line for line in err), " | ".join(err)[:200],
          G_XM, guest_independent=True)
    check("PV refused: the domain is untouched", pv["domid"] and pv["domid_after"] == pv["domid"]
          and pv["state_after"] == pv["state_before"],
          f"domid {pv['domid']} -> {pv['domid_after']}, state {pv['state_before']} -> {pv['state_after']}",
          G_XM, guest_independent=True)


def compare_results(out, settings, facts, ticks, xs, tick_ms, after_ticks, res, check):
    """--scale and --hvm: one `comparisons` entry per migration (issue 13's
    fields), a check that each moved the guest intact, and the ratios the
    targets are stated in (xmotion / xl on the same link, same run)."""
    comps = []
    step = settings.get("COMPARE_STEP") or "compare"
    for engine, link in compare_runs(settings):
        # warmup-<engine>: a migration before the measured ones (dom0-boot),
        # checked like them, never in a ratio.
        kind = engine.removeprefix("warmup-")
        tag = f"sc_{engine}_{link}"
        if tag + "_rc" not in facts:
            check(f"{step}: {engine} over {link} ran", False, "dom0 never got to it",
                  G_XM if kind == "xmotion" else G_XL)
            continue
        rc = int(facts[tag + "_rc"]) if facts[tag + "_rc"].lstrip("-").isdigit() else None
        s0, s1 = window(ticks, facts, tag)
        gv = with_clock_step(guest_view(ticks, s0, s1, tick_ms), ticks, xs) or {}
        # The same gap on dom0's clock (xenstored's stamps on the ticks).
        dv = dom0_view(xs, s0, s1, tick_ms) or {}
        errs = [t["errors"] for q, t in ticks.items() if s0 is not None and s1 is not None and s0 <= q <= s1]
        alive = s0 is not None and s1 is not None and s1 >= s0 + after_ticks
        entry = {"engine": engine, "link": link, "guest_mib": int(settings["GUEST_MB"]), "guest_type": settings.get("GUEST_TYPE") or "pvh",
                 "total_s": round(float(facts[tag + "_t1"]) - float(facts[tag + "_t0"]), 2),
                 "guest_downtime_ms": gv.get("downtime_ms"), "guest_clock_step_ms": gv.get("guest_clock_step_ms"),
                 "guest_downtime_without_clock_step_ms": gv.get("downtime_without_clock_step_ms"),
                 "guest_downtime_dom0_ms": round(dv["downtime_ms"]) if dv else None,
                 "suspend_to_first_tick_ms": dv.get("suspend_to_first_tick_ms"),
                 "report_downtime_ms": None, "bytes": None,
                 "rc": rc, "link_raw_mbs": float(facts.get(f"sc_link_{link}_mbs") or 0) or None,
                 "attempts": int(facts.get(tag + "_attempts") or 1)}
        if kind == "xl":
            try:
                entry["bytes"] = int(facts.get(tag + "_bytes"))
            except (TypeError, ValueError):
                pass
        else:
            send = load_json(os.path.join(out, tag + "-send.json")) or {}
            recv = load_json(os.path.join(out, tag + "-recv.json")) or {}
            entry["report_downtime_ms"] = send.get("downtime_ms")
            entry["report_downtime"] = send.get("downtime")
            entry["bytes"] = send.get("bytes_wire")
            entry["destination_overhead_bytes"] = recv.get("destination_overhead_bytes")
            entry["source_peak_overhead_bytes"] = send.get("source_peak_overhead_bytes")
            entry["digest_match"] = bool(send.get("digest_match")) and bool(recv.get("digest_match"))
            entry["rounds"] = len(send.get("rounds") or [])
            throttles = [r.get("throttle", 1.0) for r in send.get("rounds") or []]
            entry["throttle_min"] = min(throttles) if throttles else None
            rc = rc if entry["digest_match"] else (rc or 1)
        entry["ok"] = rc == 0 and alive and bool(errs) and max(errs) == 0
        comps.append(entry)
        check(f"{step}: {engine} over {link}: guest moved, alive, memory intact", entry["ok"],
              f"rc={rc}, ticks seq {s0} -> {s1}, self-check errors {max(errs) if errs else '-'}",
              G_XM if kind == "xmotion" else G_XL, (s0, s1))
    if step == "converge":
        # The point of --converge: the guest out-dirties the link, and only a
        # throttled guest lets pre-copy converge (PolicyConfig.auto_converge).
        for c in comps:
            if c["engine"] == "xmotion":
                check("converge: xmotion throttled the guest (auto-converge)",
                      c["ok"] and c.get("throttle_min") is not None and c["throttle_min"] < 1.0,
                      f"lowest run fraction {c.get('throttle_min')} over {c.get('rounds')} rounds", G_XM)
    res["comparisons"] = comps
    res["scale_ratios"] = scale_ratios(comps)


def scale_ratios(comps):
    """xmotion / xl per link, for the figures the scale targets name."""
    by = {(c["engine"], c["link"]): c for c in comps}
    out = {}
    for link in dict.fromkeys(c["link"] for c in comps):
        xl, xm = by.get(("xl", link)), by.get(("xmotion", link))
        if not xl or not xm or not xl["ok"] or not xm["ok"]:
            continue  # a ratio against a failed migration means nothing
        r = {}
        for key in ("total_s", "guest_downtime_ms", "guest_downtime_without_clock_step_ms", "guest_downtime_dom0_ms",
                    "suspend_to_first_tick_ms", "bytes"):
            if xl.get(key) and xm.get(key) is not None:
                r[key] = round(xm[key] / xl[key], 3)
        # The report against what the guest lost, not its clock's correction.
        guest = xm.get("guest_downtime_without_clock_step_ms")
        if guest is None:
            guest = xm.get("guest_downtime_ms")
        if xm.get("report_downtime_ms") and guest:
            r["report_vs_guest_downtime"] = round(xm["report_downtime_ms"] / guest, 3)
            r["report_within_20pct"] = abs(r["report_vs_guest_downtime"] - 1) <= 0.2
        out[link] = r
    return out


def explained_by_crash(check, crash):
    """Whether a dead guest explains this failed check: not for checks that
    hold whatever the guest does, and for a migration only if the guest died
    before that migration's window closed (it was not seen ticking on after)."""
    if crash is None or check["ok"]:
        return False
    if check.get("guest_independent"):
        return False
    if check["group"] == G_LAB:
        return False  # Xen or dom0 died, or a host deadline passed: not the guest kernel
    win = check.get("window")
    if check["group"] in (G_XL, G_XM, G_ABORT, G_EMU) and win and win[1] is not None:
        return crash["after_seq"] is None or crash["after_seq"] <= win[1]
    return True


def classify(results):
    """The run's outcome (module docstring) and, for guest-panic, why."""
    if results.get("status") == "skipped":
        return "skipped", ""
    checks = results.get("checks") or []
    failed = [c for c in checks if not c["ok"]]
    if not checks:
        return "failed", results.get("reason", "no checks ran")
    if not failed:
        return "passed", ""
    crash = results.get("guest_crash")
    if crash is None:
        return "failed", f"{len(failed)} failed check(s), no guest kernel crash on the consoles"
    unexplained = [c["check"] for c in failed if not explained_by_crash(c, crash)]
    if unexplained:
        return "failed", "a guest kernel crash does not explain: " + "; ".join(unexplained)
    return "guest-panic", (f"guest kernel crashed in {crash['console']} after tick {crash['after_seq']} "
                           f"({crash['line'][:120]}); {len(failed)} failed check(s), all after it")


def retry_allowed(results):
    """CI's rule: the whole lab is run again (at most three retries) only when
    this run's outcome is a classified guest kernel panic."""
    return classify(results)[0] == "guest-panic"


# The first run and at most three retries.
CI_ATTEMPTS = 4


def ci_verdict(results, attempt, attempts=CI_ATTEMPTS):
    """What CI does after one whole lab run: "pass", "retry" or "fail", and why.
    A retry is allowed only for a classified guest kernel panic, and at most
    `attempts` runs in all; every other failure fails CI at once."""
    outcome, why = classify(results)
    if outcome in ("passed", "skipped"):
        return "pass", outcome
    if outcome == "guest-panic" and attempt < attempts:
        return "retry", f"attempt {attempt}/{attempts}: {why}"
    if outcome == "guest-panic":
        return "fail", f"the guest kernel panicked in all {attempts} attempts: {why}"
    return "fail", why


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 4 or sys.argv[1] != "--ci-verdict":
        sys.exit("usage: judge.py --ci-verdict RESULTS.json ATTEMPT   (prints: pass|retry|fail <why>)")
    with open(sys.argv[2]) as fh:
        verdict, reason = ci_verdict(json.load(fh), int(sys.argv[3]))
    print(verdict, reason)
