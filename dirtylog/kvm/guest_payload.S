// The KVM backend's guest: a bare 64-bit program that dirties its working set
// at a paced rate and keeps checking that its memory still holds what it wrote.
//
// It is assembled into the host binary as data (xm_kvm_guest_start..end) and
// copied to XMG_CODE_GPA; it only uses RIP-relative and absolute references,
// so it runs wherever the host puts it. The host enters it in long mode with
// rdi = vCPU index, rsp = that vCPU's stack, interrupts off. Layout, the
// reference tables and the events are described in guest_abi.h.
//
// Why it looks like this: on the PVM-based KVM this runs on, every guest
// instruction is emulated (~0.3-1.5 M instructions/s, memory operands cost
// more), and only integer instructions are safe. So a page write is ~7
// instructions (a stamp in word 0), the tables are never touched by writes (the
// stamp each hot page must carry follows from the counter), a pass samples 3
// words per page against fp[] (~9 instructions a page), and one whole page per
// check slice is re-added against sum[].
//
// Each vCPU works on its own share of the working set, so writes and checks of
// a page never race: one main-loop turn is a write slice, then a check slice.
//
// Registers kept across the loop: r15 = status page, r14 = share block,
// rbp = TSC at the start of the turn. Subroutines may clobber the rest.

#include "dirtylog/kvm/guest_abi.h"

#define P(field) (XMG_PARAMS_GPA + (field))

    .section .rodata.xm_kvm_guest, "a"
    .balign 16
    .globl xm_kvm_guest_start
    .globl xm_kvm_guest_end
    .code64

xm_kvm_guest_start:
    cmp $XMG_MAX_VCPUS, %rdi
    jae .Lpanic_nostatus
    mov %rdi, %rax
    shl $12, %rax
    lea XMG_STATUS_GPA(%rax), %r15
    mov %rdi, %rax
    shl $6, %rax
    lea P(XMG_P_VCPU)(%rax), %r14
    movabs $XMG_MAGIC, %rax
    cmp P(XMG_P_MAGIC), %rax
    jne .Lpanic_magic
    cmpq $XMG_VERSION, P(XMG_P_VERSION)
    jne .Lpanic_magic
    cmp P(XMG_P_NVCPUS), %rdi
    jae .Lpanic_vcpu
    call read_cpuid
    mov $XMG_EV_BOOT, %al
    out %al, $XMG_PORT_EVENT

main_loop:
    call now
    mov %rax, %rbp
    call write_slice
    push %rax
    call check_slice
    pop %rcx
    or %rcx, %rax
    jnz main_loop
    call sleep_until_due
    jmp main_loop

// rax = TSC
now:
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    ret

// Writes the pages that are due: stamps word 0 of hot page `cursor` with
// ++counter, round-robin over the share's hot pages. Returns rax = pages written.
write_slice:
    mov XMG_V_HOT_COUNT(%r14), %r12
    test %r12, %r12
    jz .Lw_none
    mov XMG_V_TSC_PER_PAGE(%r14), %r9
    test %r9, %r9
    jnz .Lw_paced
    mov $XMG_WRITE_SLICE_UNPACED, %ecx
    jmp .Lw_go
.Lw_paced:
    mov XMG_S_DUE(%r15), %r8
    test %r8, %r8
    jnz 1f
    mov %rbp, %r8                   // first turn: the schedule starts now
1:  mov P(XMG_P_CATCHUP), %r10
    mov %r8, %rax
    sub %rbp, %rax                  // due - now
    jle 2f
    cmp %r10, %rax
    jbe .Lw_ahead                   // ahead of schedule: nothing due yet
    mov %rbp, %r8                   // the TSC went backwards: restart the schedule
    jmp 3f
2:  neg %rax                        // now - due
    cmp %r10, %rax
    jbe 3f
    mov %rbp, %r8                   // too far behind (e.g. descheduled): drop the backlog
    sub %r10, %r8
3:  mov %rbp, %rax
    sub %r8, %rax
    xor %edx, %edx
    div %r9
    inc %rax                        // pages due now
    mov $XMG_WRITE_SLICE_PACED, %ecx
    cmp %rcx, %rax
    jae 4f
    mov %rax, %rcx
4:  mov %rcx, %rax
    mul %r9
    add %rax, %r8
    mov %r8, XMG_S_DUE(%r15)
.Lw_go:
    mov %rcx, %r11
    mov XMG_S_COUNTER(%r15), %r8
    mov XMG_S_CURSOR(%r15), %rdx
    mov XMG_V_HOT_FIRST(%r14), %rdi
    shl $12, %rdi
    add P(XMG_P_WS_GPA), %rdi       // first hot page of the share
    mov %rdx, %rsi
    shl $12, %rsi
    add %rdi, %rsi                  // page at the cursor
.Lw_loop:
    inc %r8
    mov %r8, (%rsi)
    add $XMG_PAGE, %rsi
    inc %rdx
    cmp %r12, %rdx
    jne 5f
    xor %edx, %edx
    mov %rdi, %rsi
5:  dec %rcx
    jnz .Lw_loop
    mov %r8, XMG_S_COUNTER(%r15)
    mov %rdx, XMG_S_CURSOR(%r15)
    mov %r11, %rax
    ret
.Lw_ahead:
.Lw_none:
    xor %eax, %eax
    ret

// Checks up to XMG_CHECK_SLICE pages of the current pass (starting one if it is
// time), then one deep page. Returns rax = 1 if it did work, 0 if idle.
//
// Hot page k of the share must carry the stamp E(k) = A + k for k < c and
// A + k - H for k >= c, where c = cursor, A = counter - c + 1: the pages
// before the cursor were written in the current lap, the others in the last.
check_slice:
    mov XMG_V_HOT_COUNT(%r14), %r12
    mov XMG_V_COLD_COUNT(%r14), %r13
    mov XMG_S_CHECK_POS(%r15), %r8  // position k within the share: hot pages, then cold
    test %r8, %r8
    jnz .Lc_go
    mov XMG_S_NEXT_PASS(%r15), %rax
    sub %rbp, %rax                  // next - now
    jle .Lc_start
    cmp P(XMG_P_PASS_INTERVAL), %rax
    jbe .Lc_idle                    // (further away than an interval: the TSC went back)
.Lc_start:
    mov %rbp, %rax
    add P(XMG_P_PASS_INTERVAL), %rax
    mov %rax, XMG_S_NEXT_PASS(%r15)
    movq $0, XMG_S_PASS_BAD(%r15)
.Lc_go:
    mov $XMG_CHECK_SLICE, %r11      // budget
    xor %r10d, %r10d                // bad pages in this slice
    cmp %r12, %r8
    jae .Lc_cold
    mov XMG_S_CURSOR(%r15), %r9     // c
    mov XMG_S_COUNTER(%r15), %rbx
    sub %r9, %rbx
    inc %rbx                        // A
    cmp %r9, %r8
    jae .Lc_hot_old
    // k < c: written in the current lap.
    mov %r9, %rcx
    sub %r8, %rcx
    cmp %r11, %rcx
    jbe 1f
    mov %r11, %rcx
1:  sub %rcx, %r11
    lea (%rbx,%r8), %rdi
    mov XMG_V_HOT_FIRST(%r14), %rax
    add %r8, %rax
    add %rcx, %r8
    call locate
    call check_hot_run
    test %r11, %r11
    jz .Lc_done
.Lc_hot_old:
    // c <= k < H: written in the last lap.
    mov %r12, %rcx
    sub %r8, %rcx
    jz .Lc_cold
    cmp %r11, %rcx
    jbe 2f
    mov %r11, %rcx
2:  sub %rcx, %r11
    lea (%rbx,%r8), %rdi
    sub %r12, %rdi
    mov XMG_V_HOT_FIRST(%r14), %rax
    add %r8, %rax
    add %rcx, %r8
    call locate
    call check_hot_run
.Lc_cold:
    // H <= k < H + C: cold pages, no stamp.
    test %r11, %r11
    jz .Lc_done
    mov %r12, %rcx
    add %r13, %rcx
    sub %r8, %rcx
    jz .Lc_done
    cmp %r11, %rcx
    jbe 3f
    mov %r11, %rcx
3:  mov %r8, %rax
    sub %r12, %rax
    add XMG_V_COLD_FIRST(%r14), %rax
    add %rcx, %r8
    call locate
    call check_cold_run
.Lc_done:
    add %r10, XMG_S_PASS_BAD(%r15)
    mov %r8, XMG_S_CHECK_POS(%r15)
    call deep_check
    mov %r12, %rax
    add %r13, %rax
    cmp %rax, XMG_S_CHECK_POS(%r15)
    jb 4f
    call finish_pass
4:  mov $1, %eax
    ret
.Lc_idle:
    xor %eax, %eax
    ret

// rax = ws index -> rsi = its page, rdx = its fp[] entry.
locate:
    lea (,%rax,8), %rdx
    add P(XMG_P_FP_GPA), %rdx
    mov %rax, %rsi
    shl $12, %rsi
    add P(XMG_P_WS_GPA), %rsi
    ret

// rcx (> 0) consecutive hot pages from rsi / fp entry rdx, the first one
// carrying stamp rdi, the next rdi + 1, ...; bad pages counted in r10.
check_hot_run:
    mov (%rsi), %rax
    add XMG_FP_OFF1(%rsi), %rax
    add XMG_FP_OFF2(%rsi), %rax
    sub %rdi, %rax
    cmp (%rdx), %rax
    jne 2f
1:  inc %rdi
    add $XMG_PAGE, %rsi
    add $8, %rdx
    dec %rcx
    jnz check_hot_run
    ret
2:  call record_bad
    jmp 1b

// rcx (> 0) consecutive cold pages from rsi / fp entry rdx.
check_cold_run:
    mov (%rsi), %rax
    add XMG_FP_OFF1(%rsi), %rax
    add XMG_FP_OFF2(%rsi), %rax
    cmp (%rdx), %rax
    jne 2f
1:  add $XMG_PAGE, %rsi
    add $8, %rdx
    dec %rcx
    jnz check_cold_run
    ret
2:  call record_bad
    jmp 1b

// The page whose fp[] entry is at rdx failed: count it, remember its index.
record_bad:
    inc %r10
    mov %rdx, %rax
    sub P(XMG_P_FP_GPA), %rax
    shr $3, %rax
    mov %rax, XMG_S_LAST_BAD(%r15)
    ret

// Re-adds all 512 words of the page at the deep position and compares with
// sum[]; a mismatch counts against the current pass. Expects r12 = H, r13 = C.
deep_check:
    mov %r12, %rcx
    add %r13, %rcx
    jz 9f
    mov XMG_S_DEEP_POS(%r15), %r8
    cmp %rcx, %r8
    jb 1f
    xor %r8d, %r8d
1:  xor %edi, %edi                  // expected stamp, 0 for cold pages
    cmp %r12, %r8
    jae 2f
    mov XMG_S_CURSOR(%r15), %r9
    mov XMG_S_COUNTER(%r15), %rdi
    sub %r9, %rdi
    inc %rdi
    add %r8, %rdi
    cmp %r9, %r8
    jb 3f
    sub %r12, %rdi
3:  mov XMG_V_HOT_FIRST(%r14), %rax
    add %r8, %rax
    jmp 4f
2:  mov %r8, %rax
    sub %r12, %rax
    add XMG_V_COLD_FIRST(%r14), %rax
4:  mov %rax, %rbx                  // ws index
    shl $12, %rax
    add P(XMG_P_WS_GPA), %rax
    mov %rax, %rsi
    mov $64, %ecx
    xor %eax, %eax
5:  add (%rsi), %rax
    add 8(%rsi), %rax
    add 16(%rsi), %rax
    add 24(%rsi), %rax
    add 32(%rsi), %rax
    add 40(%rsi), %rax
    add 48(%rsi), %rax
    add 56(%rsi), %rax
    add $64, %rsi
    dec %ecx
    jnz 5b
    sub %rdi, %rax
    mov P(XMG_P_SUM_GPA), %rdx
    cmp (%rdx,%rbx,8), %rax
    je 6f
    incq XMG_S_PASS_BAD(%r15)
    mov %rbx, XMG_S_LAST_BAD(%r15)
6:  incq XMG_S_DEEP_PAGES(%r15)
    inc %r8
    mov %r8, XMG_S_DEEP_POS(%r15)
9:  ret

// Records the pass's verdict, refreshes the CPUID words, tells the host.
finish_pass:
    mov XMG_S_PASS_BAD(%r15), %rax
    mov %rax, XMG_S_LAST_RESULT(%r15)
    test %rax, %rax
    jnz 1f
    incq XMG_S_PASSES_OK(%r15)
    jmp 2f
1:  incq XMG_S_PASSES_BAD(%r15)
2:  movq $0, XMG_S_CHECK_POS(%r15)
    movq $0, XMG_S_PASS_BAD(%r15)
    call read_cpuid
    mov $XMG_EV_PASS, %al
    out %al, $XMG_PORT_EVENT
    ret

// Nothing to do: asks the host to sleep until the next write or pass is due
// (capped at XMG_P_MAX_SLEEP), so an idle guest does not burn a host core.
sleep_until_due:
    mov P(XMG_P_MAX_SLEEP), %rcx
    cmpq $0, XMG_S_CHECK_POS(%r15)
    jne 1f
    mov XMG_S_NEXT_PASS(%r15), %rax
    sub %rbp, %rax
    jle 1f
    cmp %rcx, %rax
    jae 1f
    mov %rax, %rcx
1:  cmpq $0, XMG_V_HOT_COUNT(%r14)
    je 2f
    cmpq $0, XMG_V_TSC_PER_PAGE(%r14)
    je 2f
    mov XMG_S_DUE(%r15), %rax
    sub %rbp, %rax
    jle 2f
    cmp %rcx, %rax
    jae 2f
    mov %rax, %rcx
2:  mov %rcx, XMG_S_SLEEP(%r15)
    mov $XMG_EV_SLEEP, %al
    out %al, $XMG_PORT_EVENT
    ret

read_cpuid:
    xor %eax, %eax
    xor %ecx, %ecx
    cpuid
    mov %ebx, XMG_S_CPUID + XMG_C_0_EBX(%r15)
    mov %edx, XMG_S_CPUID + XMG_C_0_EDX(%r15)
    mov %ecx, XMG_S_CPUID + XMG_C_0_ECX(%r15)
    mov $1, %eax
    xor %ecx, %ecx
    cpuid
    mov %eax, XMG_S_CPUID + XMG_C_1_EAX(%r15)
    mov %ebx, XMG_S_CPUID + XMG_C_1_EBX(%r15)
    mov %ecx, XMG_S_CPUID + XMG_C_1_ECX(%r15)
    mov %edx, XMG_S_CPUID + XMG_C_1_EDX(%r15)
    mov $7, %eax
    xor %ecx, %ecx
    cpuid
    mov %ebx, XMG_S_CPUID + XMG_C_7_EBX(%r15)
    mov %ecx, XMG_S_CPUID + XMG_C_7_ECX(%r15)
    mov %edx, XMG_S_CPUID + XMG_C_7_EDX(%r15)
    mov $0x80000001, %eax
    xor %ecx, %ecx
    cpuid
    mov %ecx, XMG_S_CPUID + XMG_C_81_ECX(%r15)
    mov %edx, XMG_S_CPUID + XMG_C_81_EDX(%r15)
    ret

.Lpanic_magic:
    movq $XMG_PANIC_MAGIC, XMG_S_PANIC(%r15)
    jmp .Lpanic
.Lpanic_vcpu:
    movq $XMG_PANIC_VCPU, XMG_S_PANIC(%r15)
.Lpanic:
    mov $XMG_EV_PANIC, %al
    out %al, $XMG_PORT_EVENT
.Lpanic_nostatus:
    cli
    hlt
    jmp .Lpanic_nostatus

xm_kvm_guest_end:

    .section .note.GNU-stack, "", @progbits
