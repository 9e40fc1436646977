/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Multiboot v1 entry of the tiny guest: our own flat GDT (the loader's may
 * be gone), a stack, an IDT whose IRQ0 counts PIT ticks so the main loop
 * can sleep with hlt, then tiny_main(multiboot info).
 */
#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00000003 /* page-align modules, want memory info */

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.section .text
	.globl _start
_start:
	cli
	mov $stack_top, %esp
	push %ebx			/* multiboot info, for tiny_main */
	lgdt gdt_desc
	ljmp $0x08, $1f
1:	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs
	mov %ax, %ss
	call idt_setup
	lidt idt_desc
	call tiny_main
2:	cli
	hlt
	jmp 2b

/* Fill the IDT: vectors 0-31 fault (print and stop) but 2 (NMI: counted,
 * the host's inject-nmi asks for a check of the working set), 32 the tick,
 * the rest just acknowledge. */
idt_setup:
	xor %ecx, %ecx
3:	mov $isr_other, %eax
	cmp $32, %ecx
	jae 4f
	mov $isr_fault, %eax
4:	cmp $32, %ecx
	jne 7f
	mov $isr_tick, %eax
7:	cmp $2, %ecx
	jne 5f
	mov $isr_nmi, %eax
5:	lea idt(,%ecx,8), %edx
	mov %ax, (%edx)
	movw $0x08, 2(%edx)
	movw $0x8e00, 4(%edx)		/* present, ring 0, 32-bit interrupt gate */
	shr $16, %eax
	mov %ax, 6(%edx)
	inc %ecx
	cmp $256, %ecx
	jne 3b
	ret

	.globl tiny_ticks
isr_tick:
	push %eax
	incl tiny_ticks
	mov $0x20, %al
	out %al, $0x20			/* EOI to the master PIC */
	pop %eax
	iret

	.globl tiny_nmis
isr_nmi:
	incl tiny_nmis
	iret

isr_other:
	push %eax
	mov $0x20, %al
	out %al, $0xa0
	out %al, $0x20
	pop %eax
	iret

isr_fault:
	call tiny_fault
6:	cli
	hlt
	jmp 6b

	.section .data
	.align 8
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x08: flat 4 GiB code */
	.quad 0x00cf92000000ffff	/* 0x10: flat 4 GiB data */
gdt_desc:
	.word gdt_desc - gdt - 1
	.long gdt
	.align 4
idt_desc:
	.word 256 * 8 - 1
	.long idt
tiny_ticks:
	.long 0
tiny_nmis:
	.long 0

	.section .bss
	.align 16
idt:
	.space 256 * 8
stack:
	.space 16384
stack_top:
	.section .note.GNU-stack,"",@progbits
