// The contract between the KVM backend and its guest payload (guest_payload.S):
// where things live in guest-physical memory and what the port-IO events mean.
// Included by both the C++ host side and the assembler, so: #defines only.
//
// Guest-physical layout (identity-mapped with 2 MiB pages, 0..4 GiB):
//   0x0000_1000  PML4, 0x2000 PDPT, 0x3000-0x6fff four page directories
//   0x0000_8000  parameters (host-written at boot, read-only for the guest)
//   0x0000_9000  one status page per vCPU (guest-written, host-read)
//   0x0001_0000  payload code
//   0x0004_0000  stacks (one 4 KiB stack per vCPU, growing down from the top)
//   0x0010_0000  check tables: fingerprint table, then sum table, 8 bytes per ws page
//   ws_gpa       the working set (2 MiB aligned, after the tables)
//
// Every working-set page i has two reference values computed when it was filled:
//   fp[i]  = w[0] + w[256] + w[511]          (64-bit words, mod 2^64)
//   sum[i] = w[0] + w[1] + ... + w[511]
// For hot pages, word 0 is the guest's stamp (the counter value of the last
// write to that page) and the reference values are computed with the stamp the
// page had at fill time subtracted out; the guest knows which stamp each hot
// page must carry from its counter, so it can check the page without ever
// updating the tables on a write. A "pass" checks fp[] for every page of the
// vCPU's share of the working set; each check slice (XMG_CHECK_SLICE pages)
// also re-adds one whole page against sum[] (the "deep" check), rotating
// through the share, so over many passes every word of every page is read.
#pragma once

#define XMG_MAGIC 0x54534d474d4b4d58 /* "XMKMGMST" little-endian */
#define XMG_VERSION 1
#define XMG_MAX_VCPUS 4

#define XMG_PML4_GPA 0x1000
#define XMG_PDPT_GPA 0x2000
#define XMG_PD_GPA 0x3000 /* four pages: identity map of 0..4 GiB */
#define XMG_PARAMS_GPA 0x8000
#define XMG_STATUS_GPA 0x9000 /* + 0x1000 * vcpu */
#define XMG_CODE_GPA 0x10000
#define XMG_CODE_MAX 0x10000
#define XMG_STACK_TOP 0x40000 /* - 0x1000 * vcpu */
#define XMG_TABLES_GPA 0x100000
#define XMG_WS_ALIGN 0x200000

#define XMG_PAGE 4096
/* Byte offsets of the words the fingerprint adds to word 0. */
#define XMG_FP_OFF1 (256 * 8)
#define XMG_FP_OFF2 (511 * 8)

/* Parameters page: u64 fields at these byte offsets. */
#define XMG_P_MAGIC 0
#define XMG_P_VERSION 8
#define XMG_P_NVCPUS 16
#define XMG_P_TSC_KHZ 24
#define XMG_P_WS_GPA 32
#define XMG_P_FP_GPA 40
#define XMG_P_SUM_GPA 48
#define XMG_P_PASS_INTERVAL 56 /* TSC ticks between the starts of two passes */
#define XMG_P_CATCHUP 64       /* TSC ticks of write backlog the pacer may make up */
#define XMG_P_MAX_SLEEP 72     /* longest sleep the guest asks for, TSC ticks */
#define XMG_P_VCPU 128         /* + 64 * vcpu: that vCPU's share */
/* Per-vCPU share (offsets within its 64-byte block). */
#define XMG_V_HOT_FIRST 0  /* ws index of the share's first hot page */
#define XMG_V_HOT_COUNT 8  /* hot pages, written round-robin */
#define XMG_V_COLD_FIRST 16
#define XMG_V_COLD_COUNT 24
#define XMG_V_TSC_PER_PAGE 32 /* write pacing; 0 = as fast as possible */

/* Status page: u64 fields at these byte offsets. */
#define XMG_S_COUNTER 0      /* page writes so far = stamp of the latest write */
#define XMG_S_CURSOR 8       /* next hot page to write (== counter mod hot_count) */
#define XMG_S_DUE 16         /* TSC at which the next write is due (paced) */
#define XMG_S_CHECK_POS 24   /* position of the current pass within the share */
#define XMG_S_PASS_BAD 32    /* bad pages found by the current pass so far */
#define XMG_S_NEXT_PASS 40   /* TSC before which no new pass starts */
#define XMG_S_PASSES_OK 48   /* lifetime (travels with the guest's memory) */
#define XMG_S_PASSES_BAD 56
#define XMG_S_LAST_BAD 64    /* ws index of the last bad page, ~0 if none */
#define XMG_S_DEEP_POS 72
#define XMG_S_DEEP_PAGES 80  /* pages whose full sum was re-added, lifetime */
#define XMG_S_SLEEP 88       /* TSC ticks the guest asks to sleep (XMG_EV_SLEEP) */
#define XMG_S_LAST_RESULT 96 /* bad pages of the last completed pass */
#define XMG_S_PANIC 104      /* why the guest gave up (XMG_EV_PANIC) */
#define XMG_S_CPUID 128      /* u32 x 12, see below */
/* CPUID words the guest saw, refreshed at boot and after every pass. */
#define XMG_C_0_EBX 0
#define XMG_C_0_EDX 4
#define XMG_C_0_ECX 8
#define XMG_C_1_EAX 12
#define XMG_C_1_EBX 16
#define XMG_C_1_ECX 20
#define XMG_C_1_EDX 24
#define XMG_C_7_EBX 28
#define XMG_C_7_ECX 32
#define XMG_C_7_EDX 36
#define XMG_C_81_ECX 40
#define XMG_C_81_EDX 44

/* Work per main-loop turn: pages written when paced / unpaced, pages checked. */
#define XMG_WRITE_SLICE_PACED 1024
#define XMG_WRITE_SLICE_UNPACED 512
#define XMG_CHECK_SLICE 512

/* Port-IO events: `out %al, $XMG_PORT_EVENT` with al = one of these. The host
   reads the vCPU's status page when it sees one. */
#define XMG_PORT_EVENT 0xe0
#define XMG_EV_BOOT 1  /* started; CPUID words filled in */
#define XMG_EV_PASS 2  /* a pass completed; XMG_S_LAST_RESULT says how */
#define XMG_EV_SLEEP 3 /* nothing to do for XMG_S_SLEEP ticks */
#define XMG_EV_PANIC 4 /* bad parameters; the vCPU halts for good */

/* XMG_S_PANIC reasons. */
#define XMG_PANIC_MAGIC 1
#define XMG_PANIC_VCPU 2
