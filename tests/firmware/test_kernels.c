/* A kernel table for the tests of RUN_KERNEL and of fault reporting. */
#include "tinyml_firmware.h"

/* Adds one to the first 16 arena bytes. */
static void add_one(uint8_t *arena) {
  for (int i = 0; i < 16; ++i) arena[i] = (uint8_t)(arena[i] + 1);
}

/* Executes an undefined instruction: a HardFault on Cortex-M, SIGILL on the host. */
static void undefined_instruction(uint8_t *arena) {
  (void)arena;
  __builtin_trap();
}

static uint32_t recurse(uint32_t depth) {
  volatile uint8_t frame[64];
  frame[0] = (uint8_t)depth;
  return depth == 0 ? frame[0] : recurse(depth - 1) + frame[0];
}

/* Recurses far deeper than any stack. */
static void overflow_stack(uint8_t *arena) { arena[0] = (uint8_t)recurse(arena[1] + (1u << 20)); }

/* Never returns: the board goes silent. */
static void spin_forever(uint8_t *arena) {
  for (;;) __asm__ volatile("" ::: "memory");
  (void)arena;
}

const tinyml_kernel_t tinyml_kernels[] = {
    {"add_one", add_one},
    {"undefined_instruction", undefined_instruction},
    {"overflow_stack", overflow_stack},
    {"spin_forever", spin_forever},
};
const uint32_t tinyml_num_kernels = sizeof(tinyml_kernels) / sizeof(tinyml_kernels[0]);
