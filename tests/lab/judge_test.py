#!/usr/bin/env python3
"""The nested-Xen lab's judge (scripts/xen-lab.d/judge.py) on hand-made dom0
results: the console of a guest that panicked under QEMU's emulated SVM (the
panic CI saw), with and without real migration failures around it, and CI's
retry rule. No lab runs here."""
import json
import os
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "xen-lab.d"))
import judge  # noqa: E402

SETTINGS = {"GUEST_TICK_MS": "100", "AFTER_TICKS": "20", "RUN_XL": "1", "RUN_XM": "1"}

# What the guest's console showed in CI (trimmed): the panic in the entry path.
PANIC = """[   41.120733] BUG: ENTRY_TRAMPOLINE stack guard page was hit at 00000000a4d6b6f2 (stack is 0000000062f1a0c3..00000000e2bd2a4d)
[   41.120739] stack guard page: 0000 [#1] PREEMPT SMP NOPTI
[   41.120745] RIP: 0010:error_entry+0x10/0x130
[   41.120790]  asm_sysvec_xen_hvm_callback+0x1a/0x20
[   41.120811] Kernel panic - not syncing: Fatal exception in interrupt
"""


def tick(seq, errors=0):
    return (f"XTICK seq={seq} boot_ms={seq * 100 + 5000} rt_ms={1796391960000 + seq * 100} "
            f"writes={seq * 32} verified={seq * 32} passes={seq // 130} errors={errors}\n")


class Lab:
    """A dom0 results folder as dom0-boot writes it."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = self.dir.name
        os.makedirs(os.path.join(self.out, "console"))
        self.facts = {}
        self.steps = []
        self.consoles = {}

    def step(self, name, rc=0):
        t = 1000.0 + len(self.steps) * 10
        self.steps.append(f"{name}\t{t}\t{t + 5}\t{rc}")

    def console(self, domain, *parts):
        self.consoles.setdefault(f"guest-{domain}.log", []).extend(parts)

    def ticks(self, domain, first, last, errors=0):
        self.console(domain, *[tick(s, errors) for s in range(first, last + 1)])

    def report(self, name, **fields):
        with open(os.path.join(self.out, name), "w") as f:
            json.dump(fields, f)

    def judge(self, settings=None):
        with open(os.path.join(self.out, "facts"), "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in self.facts.items())
        with open(os.path.join(self.out, "steps.tsv"), "w") as f:
            f.writelines(s + "\n" for s in self.steps)
        for fn, parts in self.consoles.items():
            with open(os.path.join(self.out, "console", fn), "w") as f:
                f.write("".join(parts))
        res, _ = judge.analyse(self.out, settings or SETTINGS)
        res["status"] = "passed" if all(c["ok"] for c in res["checks"]) else "failed"
        self.dir.cleanup()
        return res

    # The parts of a healthy run, each usable on its own.
    def boot(self):
        for s in ("xen-daemons", "guest-create", "guest-ticks"):
            self.step(s)
        self.ticks("guest", 1, 40)

    def xmotion_ok(self):
        self.step("xm-migrate")
        self.facts.update(xm_send_rc=0, xm_recv_rc=0, xm_t0=1.0, xm_t1=9.0, xm_seq_before=40, xm_seq_after=70,
                          xm_src_domid=1, xm_dst_domid=2, xm_src_gone=1)
        self.ticks("guest", 41, 48)
        self.ticks("guest-xm", 49, 70)
        self.report("xm-send.json", result="completed", digest_match=True, source_guest="released")
        self.report("xm-recv.json", result="completed", digest_match=True)

    def abort_ok(self):
        self.step("xm-abort")
        self.facts.update(abort_receiver_killed=1, abort_send_rc=1, abort_src_name="guest-xm", abort_src_alive=1,
                          abort_src_state="-b----", abort_dst_left=0, abort_seq_before_wait=80, abort_seq_after=100)
        self.ticks("guest-xm", 71, 100)

    def xl_ok(self):
        self.step("xl-migrate")
        self.facts.update(xl_rc=0, xl_t0=20.0, xl_t1=25.0, xl_domid_before=2, xl_domid_after=4, xl_bytes=150000000,
                          xl_seq_before=100, xl_seq_after=130)
        self.ticks("guest-xm", 101, 130)

    def crashed_ok(self):
        # The lab crashes the guest on purpose (xen-hvmcrash); its kernel prints an oops.
        with open(os.path.join(self.out, "console-lines-before-deliberate-crash.txt"), "w") as f:
            for fn, parts in self.consoles.items():
                f.write(f"{fn} {''.join(parts).count(chr(10))}\n")
        last = sorted(self.consoles)[-1][len("guest-"):-len(".log")]
        self.console(last, "[  111.158735] BUG: unable to handle page fault for address: 000000000000f001\n",
                      "[  111.160445] Oops: 0010 [#1] PREEMPT SMP NOPTI\n")
        self.step("xm-crashed")
        self.facts.update(crashed_state="----c-", crashed_send_rc=1, crashed_send_ms=230)
        self.report("crashed-send.json", result="failed", source_guest="crashed")
        with open(os.path.join(self.out, "crashed-send.err"), "w") as f:
            f.write("xmotion send: the source guest is crashed (the hypervisor's view): there is nothing to migrate\n")


class ClockStepTest(unittest.TestCase):
    """judge.clock_step: a resume that corrects the guest's clock shows in its
    ticks' (guest realtime - xenstored stamp) offset, not in dom0's gap."""

    def ticks(self, offset_before, offset_after, gap_after, delays):
        # Ticks 1..40 every 100 ms; the guest is out between 20 and 21 for
        # gap_after ms of dom0's time; its clock is offset_* ahead of dom0's;
        # each write reaches xenstored delays.get(seq, 2) ms late.
        guest, xs, t = {}, {}, 1_000_000
        for q in range(1, 41):
            t += gap_after if q == 21 else 100
            off = offset_before if q <= 20 else offset_after
            guest[q] = {"rt": t + off, "boot": t + off}
            xs[q] = {"rt": t + delays.get(q, 2), "boot": t + delays.get(q, 2), "domid": 1 if q <= 20 else 2}
        return guest, xs

    def test_a_corrected_clock_is_a_step_and_not_downtime(self):
        # The guest ran 400 ms behind until the resume; the first writes after it are slow.
        guest, xs = self.ticks(-400, 0, 500, {21: 250, 22: 120, 23: 40})
        self.assertEqual(judge.clock_step(guest, xs, (20, 21)), 400)
        gv = judge.with_clock_step(judge.guest_view(guest, 1, 40, 100), guest, (xs, []))
        self.assertEqual(gv["downtime_ms"], 800)
        self.assertEqual(gv["guest_clock_step_ms"], 400)
        self.assertEqual(gv["downtime_without_clock_step_ms"], 400)

    def test_no_step_when_the_clock_was_right(self):
        guest, xs = self.ticks(-3, -3, 500, {21: 300})
        self.assertEqual(judge.clock_step(guest, xs, (20, 21)), 0)

    def test_without_xenstore_stamps_there_is_no_step(self):
        guest, _ = self.ticks(-400, 0, 500, {})
        gv = judge.with_clock_step(judge.guest_view(guest, 1, 40, 100), guest, ({}, []))
        self.assertIsNone(gv["guest_clock_step_ms"])
        self.assertIsNone(gv["downtime_without_clock_step_ms"])


def write_xenstore_ticks(out, last, long_gaps, moves=None):
    """xenstored's access log as the lab leaves it: the ticker writes
    data/xtick = seq every 100 ms; long_gaps {seq: ms} delays that tick.
    moves {seq: ms}: the guest moved to a new domain, which writes tick seq
    on; the toolstack asked the old one to suspend ms before that tick. The
    older lines go into the rotated part."""
    def stamp(t_ms):
        sec, ms = divmod(int(t_ms), 1000)
        return time.strftime("[%Y%m%dT%H:%M:%S", time.gmtime(sec)) + f".{ms:03d}Z]  "
    t, lines, domid = 1_800_000_000_000, [], 2
    for seq in range(1, last + 1):
        t += long_gaps.get(seq, 100)
        if moves and seq in moves:
            at = t - moves[seq]
            i = len(lines)
            while i > 0 and lines[i - 1][0] > at:
                i -= 1
            lines.insert(i, (at, stamp(at) + f"A17          write     /local/domain/{domid}/control/shutdown suspend\n"))
            domid += 1
        lines.append((t, stamp(t) + f"D{domid}           write     data/xtick {seq}\n"))
    lines = [line for _, line in lines]
    with open(os.path.join(out, "xenstored-access.log.1"), "w") as f:
        f.writelines(lines[:60])
    with open(os.path.join(out, "xenstored-access.log"), "w") as f:
        f.write("[20261205T02:23:14.394Z]  D3           newconn   \n")
        f.writelines(lines[60:])


def failed(res):
    return [c["check"] for c in res["checks"] if not c["ok"]]


class JudgeTest(unittest.TestCase):
    def test_a_healthy_run_passes(self):
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        res = lab.judge()
        self.assertEqual(failed(res), [])
        self.assertEqual(judge.classify(res)[0], "passed")
        self.assertFalse(judge.retry_allowed(res))
        self.assertIsNone(res["guest_crash"])

    def test_each_migrations_gap_is_also_read_on_dom0s_clock(self):
        # xmotion's window is ticks 40..70, xl's 100..130 (xmotion_ok, xl_ok):
        # on dom0's clock xmotion's longest gap is 45 -> 46 (700 ms), xl's
        # 120 -> 121 (450 ms); the guest's own ticks (console) are 100 ms apart.
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        # The suspend requests: xmotion's 760 ms before tick 46 (the old domain
        # still wrote tick 45 after it), xl's 400 ms before tick 121.
        write_xenstore_ticks(lab.out, 130, {46: 700, 121: 450}, moves={46: 760, 121: 400})
        res = lab.judge()
        self.assertEqual(failed(res), [])
        self.assertEqual(res["xmotion"]["guest_dom0"]["downtime_ms"], 600)
        self.assertEqual(res["xmotion"]["guest_dom0"]["gap_between_seqs"], (45, 46))
        self.assertEqual(res["xmotion"]["guest_dom0"]["suspend_to_first_tick_ms"], 760)
        self.assertEqual(res["xl_migrate"]["guest_dom0"]["downtime_ms"], 350)
        self.assertEqual(res["xl_migrate"]["guest_dom0"]["suspend_to_first_tick_ms"], 400)
        # Without a suspend request in the log (or no move), no such figure.
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        write_xenstore_ticks(lab.out, 130, {46: 700, 121: 450})
        self.assertIsNone(lab.judge()["xmotion"]["guest_dom0"]["suspend_to_first_tick_ms"])
        # Without xenstored's log there is no dom0 figure, and nothing fails for it.
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        res = lab.judge()
        self.assertEqual(failed(res), [])
        self.assertIsNone(res["xmotion"]["guest_dom0"])

    def test_panic_during_xmotions_final_round_is_a_guest_panic_and_may_be_retried(self):
        # CI's second run: the guest died 0.35 s after xmotion asked it to
        # suspend; xmotion, the abort check and xl migrate all failed on it.
        lab = Lab()
        lab.boot()
        lab.step("xm-migrate", 1)
        lab.ticks("guest", 41, 47)
        lab.console("guest", PANIC)
        lab.facts.update(xm_send_rc=1, xm_recv_rc=1, xm_t0=1.0, xm_t1=9.0, xm_seq_before=40, xm_seq_after=47,
                         xm_src_domid=1, xm_dst_domid="", xm_src_gone=0)
        lab.report("xm-send.json", result="failed", error="suspend: domain crashed", source_guest="crashed")
        lab.report("xm-recv.json", result="failed")
        lab.step("xm-abort", 2)
        lab.facts.update(abort_receiver_killed=0, abort_send_rc=1, abort_src_name="guest", abort_src_alive=1,
                         abort_src_state="----c-", abort_dst_left=0, abort_seq_before_wait=47, abort_seq_after=47)
        lab.step("xl-migrate", 1)
        lab.facts.update(xl_rc=1, xl_t0=20.0, xl_t1=21.0, xl_domid_before=1, xl_domid_after=1, xl_seq_before=47)
        lab.crashed_ok()
        res = lab.judge()
        self.assertIn("xmotion: completed", failed(res))
        self.assertIn("xl migrate: exit 0", failed(res))
        self.assertIn("guest kernel never crashed", failed(res))
        self.assertEqual(res["guest_crash"]["after_seq"], 47)
        self.assertIn("ENTRY_TRAMPOLINE", res["guest_crash"]["line"])
        outcome, why = judge.classify(res)
        self.assertEqual(outcome, "guest-panic", why)
        self.assertTrue(judge.retry_allowed(res))

    def test_panic_during_xl_migrate_after_xmotion_passed_is_a_guest_panic(self):
        # CI's third run: xmotion and the abort check passed, the guest died on xl's suspend.
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok()
        lab.step("xl-migrate", 1)
        lab.ticks("guest-xm", 101, 104)
        lab.console("guest-xm", PANIC)
        lab.facts.update(xl_rc=1, xl_t0=20.0, xl_t1=21.0, xl_domid_before=2, xl_domid_after=2, xl_seq_before=100)
        lab.crashed_ok()
        res = lab.judge()
        self.assertEqual(set(failed(res)), {"guest kernel never crashed", "xl migrate: exit 0",
                                            "xl migrate: new domain", "xl migrate: guest ticks continue"})
        self.assertEqual(judge.classify(res)[0], "guest-panic")

    def test_panic_soon_after_boot_before_any_migration_is_a_guest_panic(self):
        lab = Lab()
        for s in ("xen-daemons", "guest-create"):
            lab.step(s)
        lab.step("guest-ticks", 1)
        lab.ticks("guest", 1, 12)
        lab.console("guest", PANIC)
        res = lab.judge()
        self.assertIn("xmotion migration ran", failed(res))
        self.assertEqual(judge.classify(res)[0], "guest-panic")

    def test_a_failed_migration_without_a_panic_fails_at_once(self):
        lab = Lab()
        lab.boot(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        lab.step("xm-migrate", 1)
        lab.facts.update(xm_send_rc=1, xm_recv_rc=1, xm_t0=1.0, xm_t1=9.0, xm_seq_before=40, xm_seq_after=60,
                         xm_src_domid=1, xm_dst_domid="", xm_src_gone=0)
        lab.report("xm-send.json", result="failed", source_guest="running")
        lab.ticks("guest", 41, 60)
        res = lab.judge()
        outcome, why = judge.classify(res)
        self.assertEqual(outcome, "failed")
        self.assertIn("no guest kernel crash", why)
        self.assertFalse(judge.retry_allowed(res))

    def test_a_digest_mismatch_is_not_excused_by_a_later_panic(self):
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok()
        lab.report("xm-send.json", result="completed", digest_match=False)
        lab.report("xm-recv.json", result="completed", digest_match=False)
        lab.step("xl-migrate", 1)
        lab.console("guest-xm", PANIC)
        lab.facts.update(xl_rc=1, xl_t0=20.0, xl_t1=21.0, xl_seq_before=100)
        res = lab.judge()
        outcome, why = judge.classify(res)
        self.assertEqual(outcome, "failed")
        self.assertIn("xmotion: digest_match", why)
        self.assertFalse(judge.retry_allowed(res))

    def test_a_migration_that_failed_while_the_guest_lived_on_is_not_excused(self):
        # xmotion failed and the guest ticked on for 20 more ticks; the panic came later, in xl migrate.
        lab = Lab()
        lab.boot()
        lab.step("xm-migrate", 1)
        lab.facts.update(xm_send_rc=1, xm_recv_rc=0, xm_t0=1.0, xm_t1=9.0, xm_seq_before=40, xm_seq_after=60,
                         xm_src_domid=1, xm_dst_domid="", xm_src_gone=0)
        lab.report("xm-send.json", result="failed", source_guest="running")
        lab.ticks("guest", 41, 100)
        lab.step("xl-migrate", 1)
        lab.console("guest", PANIC)
        lab.facts.update(xl_rc=1, xl_t0=20.0, xl_t1=21.0, xl_seq_before=100)
        res = lab.judge()
        outcome, why = judge.classify(res)
        self.assertEqual(outcome, "failed")
        self.assertIn("xmotion: send exit 0", why)

    def test_memory_errors_and_a_left_over_destination_are_never_the_panics_doing(self):
        for spoil in ("memory", "half-built"):
            with self.subTest(spoil=spoil):
                lab = Lab()
                lab.boot(), lab.xmotion_ok(), lab.abort_ok()
                if spoil == "memory":
                    lab.ticks("guest-xm", 101, 101, errors=3)
                else:
                    lab.facts["abort_dst_left"] = 1
                lab.step("xl-migrate", 1)
                lab.console("guest-xm", PANIC)
                lab.facts.update(xl_rc=1, xl_t0=20.0, xl_t1=21.0, xl_seq_before=100)
                res = lab.judge()
                self.assertEqual(judge.classify(res)[0], "failed")
                self.assertFalse(judge.retry_allowed(res))

    def test_a_crashed_source_that_xmotion_calls_running_fails(self):
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        lab.report("crashed-send.json", result="failed", source_guest="running")
        res = lab.judge()
        self.assertEqual(failed(res), ["crashed source: report source_guest crashed"])
        self.assertEqual(judge.classify(res)[0], "failed")

    def test_a_second_injection_after_a_non_fatal_oops_passes(self):
        # CI run 20261205-103747: the first xen-hvmcrash hit khvcd, whose oops
        # killed only that thread. dom0 injects again; both oopses are ours.
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        last = sorted(lab.consoles)[-1][len("guest-"):-len(".log")]
        lab.console(last, "[  112.091865] RIP: 0010:0xf001\n",
                    "[  112.095600] note: khvcd[50] exited with irqs disabled\n", PANIC)
        lab.facts.update(crashed_injections=2)
        res = lab.judge()
        self.assertEqual(failed(res), [])
        self.assertEqual(res["xmotion_crashed_source"]["injections"], 2)
        self.assertEqual(judge.classify(res)[0], "passed")

    def test_a_domain_that_never_crashed_fails_without_a_retry(self):
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok(), lab.crashed_ok()
        lab.facts.update(crashed_state="r-----", crashed_injections=4, crashed_send_rc=5, crashed_send_ms=2103)
        lab.report("crashed-send.json", result="failed", source_guest="running")
        with open(os.path.join(lab.out, "crashed-send.err"), "w") as f:
            f.write("xmotion send: connect 127.0.0.1:9: Connection refused\n")
        res = lab.judge()
        self.assertEqual(len(failed(res)), 4)
        self.assertTrue(all(c.startswith("crashed source: ") for c in failed(res)))
        self.assertIn("after 4 injection(s)", next(c["detail"] for c in res["checks"] if not c["ok"]))
        self.assertEqual(judge.classify(res)[0], "failed")
        self.assertFalse(judge.retry_allowed(res))

    def test_a_lab_that_broke_or_was_skipped(self):
        self.assertEqual(judge.classify({"status": "skipped"})[0], "skipped")
        self.assertFalse(judge.retry_allowed({"status": "skipped"}))
        self.assertEqual(judge.classify({"status": "error", "reason": "QEMU exited"})[0], "failed")
        lab = Lab()
        lab.boot()
        lab.console("guest", PANIC)
        res = lab.judge()
        res["checks"].insert(0, {"check": "lab ran to the end", "ok": False, "detail": "Xen panicked",
                                 "group": judge.G_LAB, "window": None, "guest_independent": True})
        self.assertEqual(judge.classify(res)[0], "failed")

    def test_ci_retries_a_guest_panic_at_most_three_times(self):
        lab = Lab()
        for st in ("xen-daemons", "guest-create"):
            lab.step(st)
        lab.step("guest-ticks", 1)
        lab.console("guest", PANIC)
        panicked = lab.judge()
        for attempt in (1, 2, 3):
            self.assertEqual(judge.ci_verdict(panicked, attempt)[0], "retry")
        verdict, why = judge.ci_verdict(panicked, 4)
        self.assertEqual(verdict, "fail")
        self.assertIn("all 4 attempts", why)
        self.assertEqual(judge.ci_verdict({"status": "skipped"}, 1)[0], "pass")
        self.assertEqual(judge.ci_verdict({"status": "error", "reason": "x"}, 1)[0], "fail")


class ScaleTest(unittest.TestCase):
    """`xen-lab --scale`: one comparisons entry per migration with the fields
    issue 13 names, ok only for a guest that moved, lived on and kept its
    memory, and ratios only between two migrations that both succeeded."""

    SCALE = dict(SETTINGS, SCALE="1", GUEST_MB="1024", COMPARE_STEP="scale",
                 COMPARE_RUNS="xl:loopback xmotion:loopback xmotion:1gbit xl:1gbit")

    def migration(self, lab, engine, link, seq0, seq1, t0, t1, rc=0, domain="guest", errors=0, gap_at=None,
                  throttles=(1.0,)):
        tag = f"sc_{engine}_{link}"
        lab.facts.update({f"{tag}_rc": rc, f"{tag}_t0": t0, f"{tag}_t1": t1, f"{tag}_seq_before": seq0,
                          f"{tag}_seq_after": seq1, f"{tag}_bytes": 1100000000, f"sc_link_{link}_mbs": 9.5})
        for q in range(seq0 + 1, seq1 + 1):
            line = tick(q, errors)
            if gap_at is not None and q > gap_at:  # the guest stood still 900 ms more there
                line = line.replace(f"boot_ms={q * 100 + 5000}", f"boot_ms={q * 100 + 5900}")
            lab.console(domain, line)
        if engine.endswith("xmotion"):
            lab.report(f"{tag}-send.json", result="completed", digest_match=rc == 0, downtime_ms=950.0,
                       bytes_wire=330000000, downtime={"pause_ms": 400.0}, source_peak_overhead_bytes=28 << 20,
                       rounds=[{"round": i, "throttle": t} for i, t in enumerate(throttles)])
            lab.report(f"{tag}-recv.json", result="completed", digest_match=rc == 0,
                       destination_overhead_bytes=17 << 20)

    def first_three(self):
        """A scale run up to its last migration: xl and xmotion over loopback, xmotion over 1gbit."""
        lab = Lab()
        for s in ("xen-daemons", "guest-create", "guest-ticks", "scale"):
            lab.step(s)
        lab.ticks("guest", 1, 40)
        self.migration(lab, "xl", "loopback", 40, 100, 10.0, 110.0, gap_at=70)
        self.migration(lab, "xmotion", "loopback", 100, 160, 120.0, 180.0, domain="guest-2", gap_at=130)
        self.migration(lab, "xmotion", "1gbit", 160, 220, 190.0, 250.0, domain="guest-3", gap_at=190)
        return lab

    def run_lab(self, xl_1gbit_rc=0):
        lab = self.first_three()
        self.migration(lab, "xl", "1gbit", 220, 280 if xl_1gbit_rc == 0 else 222, 260.0, 400.0, rc=xl_1gbit_rc,
                       domain="guest-3", gap_at=250 if xl_1gbit_rc == 0 else None)
        return lab.judge(self.SCALE)

    def test_ratios_leave_out_each_guests_clock_step(self):
        # Scale run 20261205-114205: xl moved the fresh guest first (a 449 ms
        # clock step); xmotion's 1 Gbit attempt 2 ran on a replacement guest (189 ms).
        def entry(engine, link, gap, step, report=None):
            return {"engine": engine, "link": link, "ok": True, "total_s": 10.0, "bytes": 1,
                    "guest_downtime_ms": gap, "guest_clock_step_ms": step,
                    "guest_downtime_without_clock_step_ms": gap - step, "guest_downtime_dom0_ms": 500,
                    "suspend_to_first_tick_ms": 600, "report_downtime_ms": report}
        r = judge.scale_ratios([entry("xl", "loopback", 1041, 449), entry("xmotion", "loopback", 398, -3, 415),
                                entry("xmotion", "1gbit", 454, 189, 277), entry("xl", "1gbit", 391, 1)])
        self.assertEqual(r["loopback"]["guest_downtime_without_clock_step_ms"], round(401 / 592, 3))
        self.assertEqual(r["1gbit"]["report_vs_guest_downtime"], round(277 / 265, 3))
        self.assertTrue(r["1gbit"]["report_within_20pct"])  # 277 / 454 would not be

    def test_every_migration_is_an_entry_with_the_issues_fields(self):
        res = self.run_lab()
        self.assertEqual(failed(res), [])
        comps = res["comparisons"]
        self.assertEqual([(c["engine"], c["link"]) for c in comps],
                         [("xl", "loopback"), ("xmotion", "loopback"), ("xmotion", "1gbit"), ("xl", "1gbit")])
        for c in comps:
            for key in ("engine", "link", "guest_mib", "guest_type", "total_s", "guest_downtime_ms",
                        "report_downtime_ms", "bytes", "ok"):
                self.assertIn(key, c)
            self.assertEqual(c["guest_mib"], 1024)
            self.assertEqual(c["guest_type"], "pvh")
            self.assertTrue(c["ok"])
            self.assertEqual(c["guest_downtime_ms"], 900)  # the 1 s gap less one 100 ms tick
        xm = comps[1]
        self.assertEqual(xm["report_downtime_ms"], 950.0)
        self.assertEqual(xm["destination_overhead_bytes"], 17 << 20)
        self.assertIsNone(comps[0]["report_downtime_ms"])
        r = res["scale_ratios"]["loopback"]
        self.assertEqual(r["total_s"], 0.6)  # 60 s against 100 s
        self.assertEqual(r["bytes"], 0.3)
        self.assertTrue(r["report_within_20pct"])

    def test_a_failed_migration_is_not_ok_and_gets_no_ratio(self):
        res = self.run_lab(xl_1gbit_rc=1)
        comps = {(c["engine"], c["link"]): c for c in res["comparisons"]}
        self.assertFalse(comps[("xl", "1gbit")]["ok"])
        self.assertTrue(comps[("xmotion", "1gbit")]["ok"])
        self.assertIn("scale: xl over 1gbit: guest moved, alive, memory intact", failed(res))
        self.assertNotIn("1gbit", res["scale_ratios"])
        self.assertIn("loopback", res["scale_ratios"])

    def test_memory_errors_after_the_move_are_not_ok(self):
        lab = Lab()
        for s in ("xen-daemons", "guest-create", "guest-ticks", "scale"):
            lab.step(s)
        lab.ticks("guest", 1, 40)
        self.migration(lab, "xmotion", "loopback", 40, 100, 1.0, 50.0, domain="guest-2", errors=3)
        res = lab.judge(self.SCALE)
        entry = res["comparisons"][0]
        self.assertFalse(entry["ok"])


    def lost_then_ok(self, oops_console="guest-guest-3--incoming", destroyed="guest-3,guest-3--incoming"):
        """xl over 1gbit loses the guest (it panics in the incoming domain);
        dom0 destroys what is left, starts guest-r1 numbering from 322, and
        runs xl over 1gbit again, which moves it."""
        lab = self.first_three()
        lab.ticks("guest-3--incoming", 221, 222)
        lab.console(oops_console.removeprefix("guest-"), PANIC)
        lab.facts["sc_xl_1gbit_lost1"] = (f"rc=1 seq_before=220 seq_after=222 t0=260.0 t1=400.0 "
                                          f"domains={destroyed}")
        lab.ticks("guest-r1", 322, 341)
        self.migration(lab, "xl", "1gbit", 341, 401, 500.0, 600.0, domain="guest-r1", gap_at=370)
        lab.facts["sc_xl_1gbit_attempts"] = 2
        return lab.judge(self.SCALE)

    def test_a_migration_that_lost_the_guest_is_run_again_on_a_fresh_one_and_says_so(self):
        res = self.lost_then_ok()
        self.assertEqual(failed(res), [])
        self.assertEqual(judge.classify(dict(res, status="failed"))[0], "passed")
        self.assertIsNone(res["guest_crash"])
        xl = next(c for c in res["comparisons"] if (c["engine"], c["link"]) == ("xl", "1gbit"))
        self.assertTrue(xl["ok"])
        self.assertEqual(xl["attempts"], 2)
        self.assertEqual(xl["guest_downtime_ms"], 900)
        lost = res["lost_attempts"]
        self.assertEqual([(a["engine"], a["link"], a["attempt"], a["rc"]) for a in lost], [("xl", "1gbit", 1, 1)])
        self.assertIn("ENTRY_TRAMPOLINE", lost[0]["guest_crash"])
        self.assertIn("1gbit", res["scale_ratios"])

    def test_a_guest_that_destroyed_itself_gives_its_crash_to_the_lost_attempt(self):
        # It rebooted (on_reboot = "destroy"): dom0 found no domain to list.
        res = self.lost_then_ok(destroyed="")
        self.assertEqual(failed(res), [])
        self.assertIn("ENTRY_TRAMPOLINE", res["lost_attempts"][0]["guest_crash"])
        # A crash printed outside the attempt's window is still the run's.
        res = self.lost_then_ok(oops_console="guest-guest-2", destroyed="")
        self.assertIn("guest kernel never crashed", failed(res))

    def test_a_lost_warm_up_is_a_lost_attempt_too(self):
        lost = judge.lost_attempts({"sc_warmup-xl_loopback_lost1": "rc=1 seq_before=44 seq_after=44 domains="})
        self.assertEqual([(a["engine"], a["link"], a["attempt"], a["seq_after"], a["consoles"]) for a in lost],
                         [("warmup-xl", "loopback", 1, 44, [])])

    def test_a_crash_in_a_domain_no_lost_attempt_destroyed_still_counts(self):
        res = self.lost_then_ok(oops_console="guest-guest-2", destroyed="guest-3--incoming")
        self.assertIn("guest kernel never crashed", failed(res))
        self.assertNotIn("guest_crash", res["lost_attempts"][0])


class EmuXenopsdTest(unittest.TestCase):
    """--emu's emu-xenopsd step: two migrations xenopsd aborts (the source runs
    on), then a restore into the domain xenopsd created, introduced and
    unpaused, the guest ticking there."""

    EMU = dict(SETTINGS, EMU="1")

    def run_lab(self, abort_ok=True, into=7, dst_domid=7, ticks_after=True, stock_mode="xen-stream"):
        lab = Lab()
        lab.boot(), lab.xmotion_ok(), lab.abort_ok(), lab.xl_ok()
        lab.step("emu-manager")  # its own checks are not what this test is about
        lab.facts.update(emu_rc=0, emu_t0=26.0, emu_t1=27.0, emu_seq_before=130, emu_seq_after=130)
        lab.step("emu-xenopsd")
        os.makedirs(os.path.join(lab.out, "emux"))
        for i, where in enumerate(("prepare", "precopy", "suspend", "restore")):
            d = os.path.join(lab.out, f"emux-abort-{where}")
            os.makedirs(d)
            lab.report(os.path.join(d, f"emu-driver-abort-{where}.json"), ok=abort_ok, src_report_result="cancelled",
                       source_guest="running", src_state="-b----", src_lines=["prepare:xenguest", "info:1"])
            s0 = 130 + i * 15
            lab.facts.update({f"emux_abort_{where}_rc": 0 if abort_ok else 1, f"emux_abort_{where}_seq_before": s0,
                              f"emux_abort_{where}_seq_after": s0 + 15})
            lab.ticks("guest-xm", s0 + 1, s0 + 15)
        lab.report(os.path.join("emux", "emu-driver.json"), ok=True, into_created_domain=into,
                   dst_line="result:xenguest 1044476 1044479", rings=[1044476, 1044479])
        lab.report(os.path.join("emux", "emu-save.json"), result="completed", digest_match=True)
        lab.report(os.path.join("emux", "emu-restore.json"), result="completed", digest_match=True)
        lab.facts.update(emux_rc=0, emux_t0=30.0, emux_t1=40.0, emux_seq_before=190, emux_src_domid=4,
                         emux_dst_domid=dst_domid, emux_src_gone=1, emux_seq_after=220 if ticks_after else 192)
        lab.ticks("guest-xo", 191, 220 if ticks_after else 192)
        os.makedirs(os.path.join(lab.out, "emus"))
        lab.report(os.path.join("emus", "emu-driver.json"), ok=True, into_created_domain=8,
                   dst_line="result:xenguest 1044476 1044479")
        lab.report(os.path.join("emus", "emu-save.json"), result="completed", mode=stock_mode)
        lab.facts.update(emus_rc=0, emus_t0=50.0, emus_t1=70.0, emus_seq_before=220, emus_seq_after=250)
        lab.ticks("guest-stock", 221, 250)
        return lab.judge(self.EMU)

    def test_aborts_then_a_restore_into_xenopsds_domain(self):
        res = self.run_lab()
        self.assertEqual([c for c in failed(res) if "xenopsd's domain" in c or "abort (" in c or "stock" in c], [])
        self.assertIn("emu-manager save into a stock restore: guest ticks continue there",
                      [c["check"] for c in res["checks"]])
        self.assertEqual(res["emu_manager_xenopsd_domain"]["driver"]["rings"], [1044476, 1044479])

    def test_what_must_fail(self):
        self.assertIn("emu-manager abort (precopy): the source domain runs on, no restore result",
                      failed(self.run_lab(abort_ok=False)))
        self.assertIn("emu-manager into xenopsd's domain: it is the domain xenopsd created, the source is gone",
                      failed(self.run_lab(dst_domid=9)))
        self.assertIn("emu-manager into xenopsd's domain: guest ticks continue there",
                      failed(self.run_lab(ticks_after=False)))
        # An xmotion-to-xmotion migration where a stock restore was: not what the step is for.
        self.assertIn("emu-manager save into a stock restore: the save wrote Xen's stream (no xmotion peer)",
                      failed(self.run_lab(stock_mode=None)))


class ConvergeTest(unittest.TestCase):
    """`xen-lab --converge`: a link the guest out-dirties; xmotion must have
    throttled the guest (a round with throttle < 1) and moved it."""

    CONVERGE = dict(SETTINGS, GUEST_MB="128", COMPARE_STEP="converge", COMPARE_RUNS="xmotion:narrow xl:narrow")

    def run_lab(self, throttles):
        lab = Lab()
        for s in ("xen-daemons", "guest-create", "guest-ticks", "converge"):
            lab.step(s)
        lab.ticks("guest", 1, 40)
        ScaleTest.migration(self, lab, "xmotion", "narrow", 40, 100, 10.0, 90.0, domain="guest-1", gap_at=70,
                            throttles=throttles)
        ScaleTest.migration(self, lab, "xl", "narrow", 100, 160, 100.0, 300.0, domain="guest-1", gap_at=130)
        return lab.judge(self.CONVERGE)

    def test_xmotion_must_have_throttled_the_guest(self):
        res = self.run_lab((1.0, 1.0, 0.5, 0.25, 1.0))
        self.assertEqual(failed(res), [])
        self.assertEqual(res["comparisons"][0]["throttle_min"], 0.25)
        self.assertIn("converge: xmotion throttled the guest (auto-converge)",
                      failed(self.run_lab((1.0, 1.0, 1.0))))


class HvmTest(unittest.TestCase):
    """`xen-lab --hvm`: the comparison's entries say guest_type "hvm" and are
    named after the step; the PV domain must be refused at once, in one line
    naming PV, and left as it was."""

    HVM = dict(SETTINGS, GUEST_MB="128", GUEST_TYPE="hvm", COMPARE_STEP="hvm",
               COMPARE_RUNS="xmotion:loopback xl:loopback")

    def run_lab(self, pv_rc=1, pv_ms=40, pv_err="xmotion send: xen: domain 3 is a PV guest; xmotion migrates HVM "
                "and PVH guests only", pv_state_after="--p---", pv_step=True, lab=None):
        lab = lab or Lab()
        lab.step("xen-daemons")
        if pv_step:
            lab.step("pv-refused")
            lab.facts.update(pv_create_rc=0, pv_domid=3, pv_domid_after=3, pv_state_before="--p---",
                             pv_state_after=pv_state_after, pv_send_rc=pv_rc, pv_send_ms=pv_ms)
            with open(os.path.join(lab.out, "pv-send.err"), "w") as f:
                f.write(pv_err + "\n")
        for s in ("guest-create", "guest-ticks", "hvm"):
            lab.step(s)
        lab.ticks("guest", 1, 40)
        ScaleTest.migration(self, lab, "xmotion", "loopback", 40, 100, 10.0, 20.0, domain="guest-1", gap_at=70)
        ScaleTest.migration(self, lab, "xl", "loopback", 100, 160, 30.0, 45.0, domain="guest-1", gap_at=130)
        return lab.judge(self.HVM)

    def test_entries_are_hvm_and_ratios_compare_the_two(self):
        res = self.run_lab()
        self.assertEqual(failed(res), [])
        self.assertEqual([(c["engine"], c["guest_type"]) for c in res["comparisons"]],
                         [("xmotion", "hvm"), ("xl", "hvm")])
        self.assertEqual(res["scale_ratios"]["loopback"]["total_s"], round(10 / 15, 3))
        self.assertIn("hvm: xmotion over loopback: guest moved, alive, memory intact",
                      [c["check"] for c in res["checks"]])

    def test_downtime_on_dom0s_clock_from_xenstoreds_stamps(self):
        # The ticker also writes data/xtick = seq; xenstored's access log stamps
        # it. xmotion's gap (ticks 70 -> 71) is 2.5 s on dom0's clock, xl's
        # (130 -> 131) 1.0 s; ticks 100 ms apart elsewhere; the older ticks in
        # the rotated part. Without the log the entry says so (None).
        lab = Lab()
        write_xenstore_ticks(lab.out, 160, {71: 2600, 131: 1100}, moves={71: 2000, 131: 1050})
        res = self.run_lab(lab=lab)
        got = {c["engine"]: c["guest_downtime_dom0_ms"] for c in res["comparisons"]}
        self.assertEqual(got, {"xmotion": 2500, "xl": 1000})
        got = {c["engine"]: c["suspend_to_first_tick_ms"] for c in res["comparisons"]}
        self.assertEqual(got, {"xmotion": 2000, "xl": 1050})
        self.assertEqual(res["scale_ratios"]["loopback"]["suspend_to_first_tick_ms"], round(2000 / 1050, 3))
        self.assertEqual({c["engine"]: c["guest_downtime_dom0_ms"] for c in self.run_lab()["comparisons"]},
                         {"xmotion": None, "xl": None})

    def test_warmups_are_checked_but_never_compared(self):
        lab = Lab()
        for s in ("xen-daemons", "guest-create", "guest-ticks", "hvm"):
            lab.step(s)
        lab.ticks("guest", 1, 40)
        ScaleTest.migration(self, lab, "warmup-xl", "loopback", 40, 70, 1.0, 2.0, domain="guest-1", gap_at=50)
        ScaleTest.migration(self, lab, "warmup-xmotion", "loopback", 70, 100, 3.0, 4.0, domain="guest-2", gap_at=80,
                            rc=1)
        ScaleTest.migration(self, lab, "xmotion", "loopback", 100, 160, 10.0, 20.0, domain="guest-3", gap_at=130)
        ScaleTest.migration(self, lab, "xl", "loopback", 160, 220, 30.0, 45.0, domain="guest-4", gap_at=190)
        res = lab.judge(dict(self.HVM, COMPARE_RUNS="warmup-xl:loopback warmup-xmotion:loopback "
                                                   "xmotion:loopback xl:loopback"))
        engines = [c["engine"] for c in res["comparisons"]]
        self.assertEqual(engines, ["warmup-xl", "warmup-xmotion", "xmotion", "xl"])
        self.assertEqual(res["scale_ratios"]["loopback"]["total_s"], round(10 / 15, 3))
        # A failed warm-up is a failed check like any migration's (here: xmotion's, rc=1).
        self.assertIn("hvm: warmup-xmotion over loopback: guest moved, alive, memory intact", failed(res))
        self.assertNotIn("hvm: warmup-xl over loopback: guest moved, alive, memory intact", failed(res))

    def test_pv_refusal_must_be_quick_say_pv_and_leave_the_domain(self):
        self.assertIn("PV refused: send exits 1 at once", failed(self.run_lab(pv_rc=0)))
        self.assertIn("PV refused: send exits 1 at once", failed(self.run_lab(pv_ms=30000)))
        self.assertIn("PV refused: stderr names a PV guest", failed(self.run_lab(pv_err="xmotion send: connect: refused")))
        self.assertIn("PV refused: the domain is untouched", failed(self.run_lab(pv_state_after="-----s")))
        self.assertIn("PV refused: ran", failed(self.run_lab(pv_step=False)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
