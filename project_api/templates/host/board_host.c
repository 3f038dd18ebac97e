/* The build machine as a board: the channel is stdin/stdout, a crash signal becomes a FAULT
 * frame, EXIT ends the process. No cycle counter. */
#define _DEFAULT_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "board.h"

const uint32_t board_counter_kind = TINYML_COUNTER_NONE;

static uint8_t out_buffer[4096];
static size_t out_used;

/* Write out what board_write buffered (async-signal-safe: only write(2)). */
static void flush_output(void) {
  size_t done = 0;
  while (done < out_used) {
    ssize_t n = write(STDOUT_FILENO, out_buffer + done, out_used - done);
    if (n <= 0) _exit(4);
    done += (size_t)n;
  }
  out_used = 0;
}

static void on_crash(int signal_number, siginfo_t *info, void *context) {
  tinyml_fault_t fault = {0};
  (void)context;
  fault.kind = TINYML_FAULT_SIGNAL;
  fault.fault_status = (uint32_t)signal_number;
  fault.hard_fault_status = (uint32_t)info->si_code;
  fault.address = (uint32_t)(uintptr_t)info->si_addr;
  tinyml_report_fault(&fault);
}

void board_init(void) {
  static uint8_t signal_stack[1 << 16]; /* so that a stack overflow can still be reported */
  stack_t alternate = {.ss_sp = signal_stack, .ss_size = sizeof(signal_stack), .ss_flags = 0};
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_sigaction = on_crash;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaltstack(&alternate, NULL);
  const int crashes[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
  for (size_t i = 0; i < sizeof(crashes) / sizeof(crashes[0]); ++i) sigaction(crashes[i], &action, NULL);
}

uint8_t board_read_byte(void) {
  static uint8_t in_buffer[4096];
  static size_t in_used, in_next;
  if (in_next == in_used) {
    flush_output(); /* the host waits for our reply before it sends more */
    ssize_t n = read(STDIN_FILENO, in_buffer, sizeof(in_buffer));
    if (n <= 0) board_exit(0); /* the host closed the channel */
    in_used = (size_t)n;
    in_next = 0;
  }
  return in_buffer[in_next++];
}

void board_write(const uint8_t *data, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (out_used == sizeof(out_buffer)) flush_output();
    out_buffer[out_used++] = data[i];
  }
}

void board_counter_start(void) {}

tinyml_counts_t board_counter_stop(void) {
  tinyml_counts_t none = {0, 0, 0};
  return none;
}

void board_layer_mark(uint32_t mark) { (void)mark; }

tinyml_counts_t board_layer_counts(uint32_t mark) {
  (void)mark;
  return board_counter_stop();
}

void board_exit(int code) {
  flush_output();
  _exit(code);
}

int main(void) {
  board_init();
  tinyml_firmware_serve();
}
