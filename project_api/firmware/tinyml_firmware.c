/* tvm-tinyml firmware runtime: the device side of project_api/firmware_protocol.py.
 *
 * Frame: "TM" | type u8 | length u32 LE | payload | crc32 u32 LE over type, length, payload.
 * Payloads stream straight between the channel and the arena: no frame buffer. */
#include "tinyml_firmware.h"

#include <string.h>

#include "board.h"

/* ---- CRC-32 (zlib's), a nibble at a time ---- */

static const uint32_t crc_nibble_table[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

static uint32_t crc_update(uint32_t crc, const uint8_t *data, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    crc ^= data[i];
    crc = (crc >> 4) ^ crc_nibble_table[crc & 15u];
    crc = (crc >> 4) ^ crc_nibble_table[crc & 15u];
  }
  return crc;
}

static void put_u32(uint8_t *out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = (uint8_t)(value >> (8 * i));
}

/* ---- sending ---- */

static uint32_t tx_crc;

static void tx_bytes(const void *data, uint32_t n) {
  board_write((const uint8_t *)data, n);
  tx_crc = crc_update(tx_crc, (const uint8_t *)data, n);
}

static void tx_u32(uint32_t value) {
  uint8_t bytes[4];
  put_u32(bytes, value);
  tx_bytes(bytes, 4);
}

static void tx_begin(uint8_t type, uint32_t length) {
  static const uint8_t magic[2] = {'T', 'M'};
  board_write(magic, 2);
  tx_crc = 0xFFFFFFFFu;
  tx_bytes(&type, 1);
  tx_u32(length);
}

static void tx_end(void) {
  uint8_t bytes[4];
  put_u32(bytes, ~tx_crc);
  board_write(bytes, 4);
}

static void send_error(uint32_t code, const char *message) {
  uint32_t length = (uint32_t)strlen(message);
  tx_begin(TINYML_MSG_ERROR, 4 + length);
  tx_u32(code);
  tx_bytes(message, length);
  tx_end();
}

/* ---- receiving ---- */

static uint32_t rx_crc;

static void rx_bytes(uint8_t *out, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) out[i] = board_read_byte();
  rx_crc = crc_update(rx_crc, out, n);
}

static uint32_t rx_u32(void) {
  uint8_t b[4];
  rx_bytes(b, 4);
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void rx_skip(uint32_t n) {
  uint8_t byte;
  while (n--) rx_bytes(&byte, 1);
}

/* Wait for "TM", then read the type and the length. */
static void rx_header(uint8_t *type, uint32_t *length) {
  uint8_t previous = 0, byte = 0;
  do {
    previous = byte;
    byte = board_read_byte();
  } while (!(previous == 'T' && byte == 'M'));
  rx_crc = 0xFFFFFFFFu;
  rx_bytes(type, 1);
  *length = rx_u32();
}

/* Read the trailing checksum; 1 when it matches what was received. */
static int rx_end(void) {
  uint32_t expected = ~rx_crc;
  uint8_t b[4];
  for (int i = 0; i < 4; ++i) b[i] = board_read_byte();
  uint32_t got = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return got == expected;
}

/* Drop the rest of a rejected request's payload and say why. */
static void reject(uint32_t remaining, uint32_t code, const char *message) {
  rx_skip(remaining);
  send_error(rx_end() ? code : TINYML_ERR_CHECKSUM, message);
}

/* ---- measurement markers (see the QEMU plugin) ---- */

__attribute__((noinline)) void tinyml_marker_begin(void) { __asm__ volatile("" ::: "memory"); }

__attribute__((noinline)) void tinyml_marker_end(void) { __asm__ volatile("" ::: "memory"); }

static uint32_t layer_marks; /* the marks of the current (or last) measured run */

__attribute__((noinline)) void tinyml_layer_mark(uint32_t mark) {
  if (mark == layer_marks && mark < TINYML_MAX_LAYER_MARKS) board_layer_mark(mark);
  ++layer_marks;
}

static tinyml_counts_t measure(int (*body)(void *), void *arg, int *status) {
  layer_marks = 0;
  board_counter_start();
  tinyml_marker_begin();
  *status = body(arg);
  tinyml_marker_end();
  return board_counter_stop();
}

static void tx_run_header(uint8_t type, uint32_t data_bytes, int status, const tinyml_counts_t *counts) {
  tx_begin(type, 24 + data_bytes);
  tx_u32((uint32_t)status);
  tx_u32(counts->valid);
  tx_u32((uint32_t)counts->cycles);
  tx_u32((uint32_t)(counts->cycles >> 32));
  tx_u32((uint32_t)counts->instructions);
  tx_u32((uint32_t)(counts->instructions >> 32));
}

/* ---- commands ---- */

static void handle_info(uint32_t length) {
  const tinyml_model_t *m = &tinyml_model;
  if (length != 0) {
    reject(length, TINYML_ERR_LENGTH, "INFO takes no payload");
    return;
  }
  if (!rx_end()) {
    send_error(TINYML_ERR_CHECKSUM, "INFO");
    return;
  }
  uint32_t name_length = (uint32_t)strlen(m->name);
  tx_begin(TINYML_MSG_INFO_REPLY, 24 + 4 * (m->num_inputs + m->num_outputs) + name_length);
  tx_u32(TINYML_PROTOCOL_VERSION);
  tx_u32(m->arena_bytes);
  tx_u32(m->num_inputs);
  tx_u32(m->num_outputs);
  tx_u32(tinyml_num_kernels);
  tx_u32(board_counter_kind);
  for (uint32_t i = 0; i < m->num_inputs; ++i) tx_u32(m->input_bytes[i]);
  for (uint32_t i = 0; i < m->num_outputs; ++i) tx_u32(m->output_bytes[i]);
  tx_bytes(m->name, name_length);
  tx_end();
}

static int run_model(void *arg) {
  (void)arg;
  return tinyml_model.run(tinyml_model.arena);
}

static void handle_run(uint32_t length) {
  const tinyml_model_t *m = &tinyml_model;
  uint32_t in_bytes = 0, out_bytes = 0;
  for (uint32_t i = 0; i < m->num_inputs; ++i) in_bytes += m->input_bytes[i];
  for (uint32_t i = 0; i < m->num_outputs; ++i) out_bytes += m->output_bytes[i];
  if (length != in_bytes) {
    reject(length, TINYML_ERR_LENGTH, "RUN payload must be the model's input bytes");
    return;
  }
  for (uint32_t i = 0; i < m->num_inputs; ++i) rx_bytes(m->input(m->arena, (int)i), m->input_bytes[i]);
  if (!rx_end()) {
    send_error(TINYML_ERR_CHECKSUM, "RUN");
    return;
  }
  int status;
  tinyml_counts_t counts = measure(run_model, 0, &status);
  tx_run_header(TINYML_MSG_RUN_REPLY, out_bytes, status, &counts);
  for (uint32_t i = 0; i < m->num_outputs; ++i) tx_bytes(m->output(m->arena, (int)i), m->output_bytes[i]);
  tx_end();
}

static int run_kernel(void *arg) {
  const tinyml_kernel_t *kernel = (const tinyml_kernel_t *)arg;
  kernel->run(tinyml_model.arena);
  return 0;
}

static int arena_range_ok(uint32_t offset, uint32_t bytes) {
  return offset <= tinyml_model.arena_bytes && bytes <= tinyml_model.arena_bytes - offset;
}

static void handle_run_kernel(uint32_t length) {
  uint8_t *arena = tinyml_model.arena;
  if (length < 16) {
    reject(length, TINYML_ERR_LENGTH, "RUN_KERNEL needs id, in offset, out offset, out bytes");
    return;
  }
  uint32_t id = rx_u32(), in_offset = rx_u32(), out_offset = rx_u32(), out_bytes = rx_u32();
  uint32_t in_bytes = length - 16;
  if (id >= tinyml_num_kernels) {
    reject(in_bytes, TINYML_ERR_KERNEL_ID, "no such kernel in the firmware's table");
    return;
  }
  if (!arena_range_ok(in_offset, in_bytes) || !arena_range_ok(out_offset, out_bytes)) {
    reject(in_bytes, TINYML_ERR_ARENA_RANGE, "data does not fit the arena");
    return;
  }
  rx_bytes(arena + in_offset, in_bytes);
  if (!rx_end()) {
    send_error(TINYML_ERR_CHECKSUM, "RUN_KERNEL");
    return;
  }
  int status;
  tinyml_counts_t counts = measure(run_kernel, (void *)&tinyml_kernels[id], &status);
  tx_run_header(TINYML_MSG_KERNEL_REPLY, out_bytes, status, &counts);
  tx_bytes(arena + out_offset, out_bytes);
  tx_end();
}

/* LAYERS: the counts at every layer mark of the last measured run. */
static void handle_layers(uint32_t length) {
  rx_skip(length);
  if (!rx_end()) {
    send_error(TINYML_ERR_CHECKSUM, "LAYERS");
    return;
  }
  uint32_t n = layer_marks < TINYML_MAX_LAYER_MARKS ? layer_marks : TINYML_MAX_LAYER_MARKS;
  tx_begin(TINYML_MSG_LAYERS_REPLY, 8 + 20 * n);
  tx_u32(layer_marks);
  tx_u32(n);
  for (uint32_t i = 0; i < n; ++i) {
    tinyml_counts_t counts = board_layer_counts(i);
    tx_u32(counts.valid);
    tx_u32((uint32_t)counts.cycles);
    tx_u32((uint32_t)(counts.cycles >> 32));
    tx_u32((uint32_t)counts.instructions);
    tx_u32((uint32_t)(counts.instructions >> 32));
  }
  tx_end();
}

static void handle_exit(uint32_t length) {
  rx_skip(length);
  rx_end();
  tx_begin(TINYML_MSG_EXIT_REPLY, 0);
  tx_end();
  board_exit(0);
}

void tinyml_firmware_serve(void) {
  tx_begin(TINYML_MSG_READY, 0);
  tx_end();
  for (;;) {
    uint8_t type;
    uint32_t length;
    rx_header(&type, &length);
    if (length > tinyml_model.arena_bytes + 16) { /* corrupt header: resynchronise on the next magic */
      send_error(TINYML_ERR_LENGTH, "frame longer than any request");
      continue;
    }
    switch (type) {
      case TINYML_MSG_INFO: handle_info(length); break;
      case TINYML_MSG_RUN: handle_run(length); break;
      case TINYML_MSG_RUN_KERNEL: handle_run_kernel(length); break;
      case TINYML_MSG_EXIT: handle_exit(length); break;
      case TINYML_MSG_LAYERS: handle_layers(length); break;
      default: reject(length, TINYML_ERR_UNKNOWN_COMMAND, "unknown command"); break;
    }
  }
}

void tinyml_report_fault(const tinyml_fault_t *fault) {
  tx_begin(TINYML_MSG_FAULT, 32);
  tx_u32(fault->kind);
  tx_u32(fault->pc);
  tx_u32(fault->lr);
  tx_u32(fault->sp);
  tx_u32(fault->xpsr);
  tx_u32(fault->fault_status);
  tx_u32(fault->hard_fault_status);
  tx_u32(fault->address);
  tx_end();
  board_exit(3);
}
