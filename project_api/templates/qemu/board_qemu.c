/* QEMU mps2-an500 (Cortex-M7) / mps2-an386 (Cortex-M4): the channel is CMSDK UART0, the run ends
 * with a semihosting exit, and the counts come from the tinyml_cycles QEMU plugin, which writes
 * them to a host file at tinyml_marker_end that we read back through semihosting. */
#include <stdint.h>

#include "board.h"

#define UART0 ((volatile uint32_t *)0x40004000u)
enum { UART_DATA = 0, UART_STATE = 1, UART_CTRL = 2, UART_BAUDDIV = 4 };
#define UART_STATE_TX_FULL 1u
#define UART_STATE_RX_FULL 2u
#define UART_CTRL_TX_RX 3u

/* Semihosting operations (Arm semihosting specification). */
enum { SYS_OPEN = 0x01, SYS_READ = 0x06, SYS_SEEK = 0x0A, SYS_EXIT_EXTENDED = 0x20 };
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define SEMIHOSTING_MODE_READ_BINARY 1

/* The plugin's output file, relative to QEMU's working directory (the project's build dir). */
static const char counts_file[] = "tinyml_counts.bin";
static int counts_handle = -1;

const uint32_t board_counter_kind = TINYML_COUNTER_QEMU_PLUGIN;

static int semihost(int operation, const void *argument) {
  register int r0 __asm__("r0") = operation;
  register const void *r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void board_init(void) {
  UART0[UART_BAUDDIV] = 16;
  UART0[UART_CTRL] = UART_CTRL_TX_RX;
  const uint32_t open_args[3] = {(uint32_t)counts_file, SEMIHOSTING_MODE_READ_BINARY, sizeof(counts_file) - 1};
  counts_handle = semihost(SYS_OPEN, open_args);
}

uint8_t board_read_byte(void) {
  while (!(UART0[UART_STATE] & UART_STATE_RX_FULL)) {
  }
  return (uint8_t)UART0[UART_DATA];
}

void board_write(const uint8_t *data, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    while (UART0[UART_STATE] & UART_STATE_TX_FULL) {
    }
    UART0[UART_DATA] = data[i];
  }
}

void board_counter_start(void) {}

/* {instructions, cycles} (two little-endian u64) the plugin wrote at `offset` of its file. */
static tinyml_counts_t read_counts(uint32_t offset) {
  tinyml_counts_t counts = {0, 0, 0};
  uint32_t words[4];
  if (counts_handle < 0) return counts;
  const uint32_t seek_args[2] = {(uint32_t)counts_handle, offset};
  const uint32_t read_args[3] = {(uint32_t)counts_handle, (uint32_t)words, sizeof(words)};
  if (semihost(SYS_SEEK, seek_args) != 0 || semihost(SYS_READ, read_args) != 0) return counts;
  counts.instructions = (uint64_t)words[1] << 32 | words[0];
  counts.cycles = (uint64_t)words[3] << 32 | words[2];
  counts.valid = 3;
  return counts;
}

/* The plugin wrote the run's totals at offset 0 when tinyml_marker_end ran. */
tinyml_counts_t board_counter_stop(void) { return read_counts(0); }

/* The plugin counts at tinyml_layer_mark's entry itself: mark k's counts follow the totals. */
void board_layer_mark(uint32_t mark) { (void)mark; }

tinyml_counts_t board_layer_counts(uint32_t mark) { return read_counts(16u * (mark + 1u)); }

void board_exit(int code) {
  const uint32_t exit_args[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  for (;;) semihost(SYS_EXIT_EXTENDED, exit_args);
}
