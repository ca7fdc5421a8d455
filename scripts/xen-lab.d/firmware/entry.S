/*
 * The lab firmware's way in. hvmloader ends by dropping to real mode and
 * jumping to f000:fff0, the last 16 bytes of the image it was handed as
 * "SeaBIOS"; plain QEMU's reset vector lands there too. Real mode is left at
 * once: a handful of instructions (the same ones hvmloader's own trampoline
 * and SeaBIOS's POST run), because real-mode BIOS code is exactly what the
 * emulated SVM under the lab's Xen cannot run (README, "HVM guests").
 *
 * The GDT's selectors 0x10/0x18 are the ones Linux's 32-bit boot protocol
 * requires (__BOOT_CS/__BOOT_DS), so firmware_main() can enter the kernel
 * without loading another. Real-mode offsets into the F segment (*_ip)
 * come from firmware.ld.
 */
	.section .entry16, "ax"
	.code16
	.globl	entry16, gdt_desc
entry16:
	cli
	cld
	lgdtl	%cs:gdt_desc_ip
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$0x10, $entry32

	.code32
entry32:
	movw	$0x18, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	/* Low RAM, not the image: under plain QEMU the image is ROM. */
	movl	$0x8000, %esp
	call	firmware_main
1:	hlt
	jmp	1b

	.align	8
gdt:
	.quad	0
	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x10: flat 32-bit code */
	.quad	0x00cf92000000ffff	/* 0x18: flat data */
gdt_end:
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt

	.section .reset, "ax"
	.code16
	.globl	reset
reset:
	ljmp	$0xf000, $entry16_ip

	.section .note.GNU-stack, "", @progbits
