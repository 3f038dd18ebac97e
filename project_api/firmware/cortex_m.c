/* Start-up and fault capture shared by the Cortex-M boards (qemu, stm32f746).
 *
 * Reset enables the FPU, fills .data and .bss, calls board_init and runs TINYML_ENTRY (by default
 * the protocol server) on the process stack (PSP). Below that stack the board's linker script
 * leaves a guard block that the MPU makes inaccessible, so an overflow faults instead of
 * overwriting memory; exceptions run on their own handler stack (MSP), so the HardFault handler
 * can still report over the channel. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "tinyml_firmware.h"

/* Symbols of the board's linker script. */
extern uint32_t __handler_stack_top[], __stack_guard_start[], __process_stack_limit[], __process_stack_top[];
extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];

#define REG32(address) (*(volatile uint32_t *)(address))
#define SCB_CPACR REG32(0xE000ED88u)
#define SCB_CFSR REG32(0xE000ED28u)
#define SCB_HFSR REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR REG32(0xE000ED38u)
#define MPU_CTRL REG32(0xE000ED94u)
#define MPU_RNR REG32(0xE000ED98u)
#define MPU_RBAR REG32(0xE000ED9Cu)
#define MPU_RASR REG32(0xE000EDA0u)
#define MPU_CTRL_ENABLE_WITH_DEFAULT_MAP ((1u << 2) | 1u) /* PRIVDEFENA | ENABLE */
#define MPU_RASR_NO_ACCESS_XN ((1u << 28) | 1u)          /* XN, AP = 0 (no access), ENABLE */
#define CFSR_MMARVALID (1u << 7)
#define CFSR_BFARVALID (1u << 15)
#define CFSR_STACKING_ERRORS ((1u << 4) | (1u << 12)) /* MSTKERR, BSTKERR */

/* The program Reset runs: the protocol server `tvm-tinyml run` talks to, unless the build names
 * another entry, e.g. -DTINYML_ENTRY=tinyml_app_main (app_main.c of an exported project). */
#ifndef TINYML_ENTRY
#define TINYML_ENTRY tinyml_firmware_serve
#endif
void TINYML_ENTRY(void);

void Reset_Handler(void) __attribute__((noreturn));
void HardFault_Handler(void);

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))__handler_stack_top, Reset_Handler,
    HardFault_Handler, /* NMI */
    HardFault_Handler, /* HardFault */
    HardFault_Handler, /* MemManage (escalates to HardFault while disabled) */
    HardFault_Handler, /* BusFault */
    HardFault_Handler, /* UsageFault */
    0, 0, 0, 0,
    HardFault_Handler, /* SVCall */
    HardFault_Handler, /* DebugMonitor */
    0,
    HardFault_Handler, /* PendSV */
    HardFault_Handler, /* SysTick */
};

/* Switch the thread to the process stack and jump to `entry` (never returns). */
__attribute__((naked, noreturn)) static void run_on_process_stack(void (*entry)(void), uint32_t *stack_top) {
  __asm__ volatile(
      "msr psp, r1\n"
      "movs r1, #2\n"
      "msr control, r1\n"
      "isb\n"
      "bx r0\n");
}

/* Make the guard block below the process stack inaccessible (MPU region 0; the linker script
 * gives it a power-of-two size and matching alignment). */
static void protect_stack_guard(void) {
  uint32_t size = (uint32_t)((uint8_t *)__process_stack_limit - (uint8_t *)__stack_guard_start);
  MPU_RNR = 0;
  MPU_RBAR = (uint32_t)__stack_guard_start;
  MPU_RASR = MPU_RASR_NO_ACCESS_XN | ((uint32_t)(__builtin_ctz(size) - 1) << 1);
  MPU_CTRL = MPU_CTRL_ENABLE_WITH_DEFAULT_MAP;
  __asm__ volatile("dsb\nisb" ::: "memory");
}

void Reset_Handler(void) {
  SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access to the FPU */
  __asm__ volatile("dsb\nisb" ::: "memory");
  memcpy(__data_start, __data_load, (size_t)((uint8_t *)__data_end - (uint8_t *)__data_start));
  memset(__bss_start, 0, (size_t)((uint8_t *)__bss_end - (uint8_t *)__bss_start));
  protect_stack_guard();
  board_init();
  run_on_process_stack(TINYML_ENTRY, __process_stack_top);
}

/* Called by HardFault_Handler with the stacked exception frame. */
__attribute__((used)) static void report_cortex_m_fault(const uint32_t *frame, uint32_t exc_return) {
  tinyml_fault_t fault = {0};
  uint32_t cfsr = SCB_CFSR;
  int on_process_stack = (exc_return & 4u) != 0;
  uint32_t mmfar = SCB_MMFAR;
  int guard_hit = (cfsr & CFSR_MMARVALID) && mmfar >= (uint32_t)__stack_guard_start && mmfar < (uint32_t)__process_stack_limit;
  int overflowed = guard_hit || (cfsr & CFSR_STACKING_ERRORS) ||
                   (on_process_stack && (frame < __process_stack_limit || frame + 8 > __process_stack_top));
  fault.kind = overflowed ? TINYML_FAULT_STACK_OVERFLOW : TINYML_FAULT_HARD;
  fault.sp = (uint32_t)frame;
  if (!overflowed) { /* the frame is readable: r0-r3, r12, lr, pc, xpsr */
    fault.lr = frame[5];
    fault.pc = frame[6];
    fault.xpsr = frame[7];
  }
  fault.fault_status = cfsr;
  fault.hard_fault_status = SCB_HFSR;
  fault.address = (cfsr & CFSR_BFARVALID) ? SCB_BFAR : (cfsr & CFSR_MMARVALID) ? mmfar : 0;
  tinyml_report_fault(&fault);
}

__attribute__((naked)) void HardFault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n"
      "ite eq\n"
      "mrseq r0, msp\n"
      "mrsne r0, psp\n"
      "mov r1, lr\n"
      "b report_cortex_m_fault\n");
}
