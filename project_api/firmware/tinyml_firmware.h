/* tvm-tinyml firmware runtime: serves the framed protocol of project_api/firmware_protocol.py
 * over one byte channel, for any model the compiler emits. Shared by every board; a board
 * supplies the functions of board.h, the project generator supplies tinyml_model and the
 * kernel table. */
#ifndef TINYML_FIRMWARE_H_
#define TINYML_FIRMWARE_H_

#include <stdint.h>

#define TINYML_PROTOCOL_VERSION 1u

/* Frame types (firmware_protocol.Msg). */
enum {
  TINYML_MSG_INFO = 0x01,
  TINYML_MSG_RUN = 0x02,
  TINYML_MSG_RUN_KERNEL = 0x03,
  TINYML_MSG_EXIT = 0x04,
  TINYML_MSG_LAYERS = 0x05,
  TINYML_MSG_INFO_REPLY = 0x81,
  TINYML_MSG_RUN_REPLY = 0x82,
  TINYML_MSG_KERNEL_REPLY = 0x83,
  TINYML_MSG_EXIT_REPLY = 0x84,
  TINYML_MSG_LAYERS_REPLY = 0x85,
  TINYML_MSG_READY = 0x90,
  TINYML_MSG_ERROR = 0xE0,
  TINYML_MSG_FAULT = 0xEF
};

/* ERROR frame codes (firmware_protocol.ERROR_CODES). */
enum {
  TINYML_ERR_CHECKSUM = 1,
  TINYML_ERR_UNKNOWN_COMMAND = 2,
  TINYML_ERR_LENGTH = 3,
  TINYML_ERR_KERNEL_ID = 4,
  TINYML_ERR_ARENA_RANGE = 5
};

/* How a board measures a run (firmware_protocol.Counter). */
enum { TINYML_COUNTER_NONE = 0, TINYML_COUNTER_DWT = 1, TINYML_COUNTER_QEMU_PLUGIN = 2 };

/* The arena: 16-byte aligned; on Cortex-M in its own section, which the linker script places. */
#if defined(__arm__)
#define TINYML_ARENA_ATTRIBUTES __attribute__((aligned(16), section(".arena")))
#else
#define TINYML_ARENA_ATTRIBUTES __attribute__((aligned(16)))
#endif

/* The model compiled into the firmware (written by the project generator from metadata.json). */
typedef struct {
  const char *name;
  uint8_t *arena;
  uint32_t arena_bytes;
  uint32_t num_inputs;
  const uint32_t *input_bytes;
  uint32_t num_outputs;
  const uint32_t *output_bytes;
  uint8_t *(*input)(uint8_t *arena, int i);
  const uint8_t *(*output)(const uint8_t *arena, int i);
  int (*run)(uint8_t *arena);
} tinyml_model_t;

/* One entry of the kernel table RUN_KERNEL indexes (for tuning); a kernel works on the arena. */
typedef struct {
  const char *name;
  void (*run)(uint8_t *arena);
} tinyml_kernel_t;

extern const tinyml_model_t tinyml_model;
extern const tinyml_kernel_t tinyml_kernels[];
extern const uint32_t tinyml_num_kernels;

/* What a board's counter measured over one run. */
typedef struct {
  uint64_t cycles;
  uint64_t instructions;
  uint32_t valid; /* bit 0: cycles, bit 1: instructions */
} tinyml_counts_t;

/* A CPU fault, as reported in the FAULT frame (firmware_protocol.FaultReport). */
typedef struct {
  uint32_t kind; /* 1 HardFault, 2 stack overflow, 3 host signal */
  uint32_t pc, lr, sp, xpsr;
  uint32_t fault_status;      /* CFSR, or the signal number on the host */
  uint32_t hard_fault_status; /* HFSR, or the signal code on the host */
  uint32_t address;           /* MMFAR/BFAR when valid, or the faulting address */
} tinyml_fault_t;

enum { TINYML_FAULT_HARD = 1, TINYML_FAULT_STACK_OVERFLOW = 2, TINYML_FAULT_SIGNAL = 3 };

/* Send READY, then answer requests forever. */
void tinyml_firmware_serve(void) __attribute__((noreturn));

/* The standalone application of an exported project (app_main.c): one inference on a sample
 * input, its outputs printed as text; cortex_m.c runs it when built with
 * -DTINYML_ENTRY=tinyml_app_main. */
void tinyml_app_main(void) __attribute__((noreturn));

/* Send a FAULT frame and end through board_exit (callable from a fault handler). */
void tinyml_report_fault(const tinyml_fault_t *fault) __attribute__((noreturn));

/* Empty functions executed right before and right after the measured code; the QEMU plugin
 * counts the instructions executed between them. */
void tinyml_marker_begin(void);
void tinyml_marker_end(void);

/* Layer marks: a model built with -DTINYML_PROFILE_LAYERS calls this before each layer (marks 0, 1, ...
 * in execution order); LAYERS reports the board's counts at each mark of the last measured run. */
#define TINYML_MAX_LAYER_MARKS 1024u
void tinyml_layer_mark(uint32_t mark);

#endif /* TINYML_FIRMWARE_H_ */
