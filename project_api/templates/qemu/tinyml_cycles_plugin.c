/* tinyml_cycles: a QEMU TCG plugin that counts, exactly, the guest instructions executed between
 * the firmware's tinyml_marker_begin and tinyml_marker_end, and estimates the Cortex-M4 cycles
 * they take from ARM's published instruction timings (Cortex-M4 TRM, table 3-1):
 *
 *   data processing, MUL/MLA/MLS, long multiplies, DSP (SMLAD, SMLABB, QADD, SXTB16...)  1
 *   LDR* single                                  2, or 1 right after an LDR whose result it
 *                                                   does not use for its address (pipelined)
 *   STR* immediate offset 1, register offset 2 (1 when pipelined after an LDR)
 *   LDRD/STRD 3, LDM/STM/PUSH/POP 1+N, SDIV/UDIV 7 (ARM: 2..12), TBB/TBH 2
 *   VLDR/VSTR 2, VLDM/VSTM/VPUSH/VPOP 1+N, VMLA/VFMA family 3, VDIV/VSQRT 14, other VFP 1
 *   every taken branch (any write to the PC)     + P = 2 for the pipeline refill (ARM: 1..3)
 *
 * QEMU models no pipeline, so this is an estimate; instruction counts are exact. Each
 * translation block's instructions and cycles are summed at translation; at run time one
 * callback per block adds them, and a block that does not start where the previous one fell
 * through was reached by a taken branch. QEMU also ends blocks where no branch is (page
 * boundaries, size limits): a block entered by falling through gets the pipelining its first
 * instruction has after the previous block's last, so the estimate depends on the instruction
 * sequence only, not on where the code sits in memory. At tinyml_marker_end the counts since
 * tinyml_marker_begin are written to the output file as two little-endian u64:
 * {instructions, cycles}, which the firmware reads back through semihosting. With mark=ADDR (the
 * firmware's tinyml_layer_mark), the counts since tinyml_marker_begin at the k-th entry to it are
 * written at offset 16 * (k + 1): per-layer counts for `tvm-tinyml profile`.
 *
 * Arguments: begin=ADDR,end=ADDR,out=FILE[,mark=ADDR].  Built with the host cc; Debian ships no QEMU plugin
 * headers, so the few API declarations of QEMU 7.2 (plugin API version 1) are written here. */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the subset of qemu-plugin.h (QEMU 7.2) used here ---- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
  const char *target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

#define PLUGIN_EXPORT __attribute__((visibility("default")))
PLUGIN_EXPORT int qemu_plugin_version = 1;
PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* ---- Cortex-M4 cost table ---- */
enum { PIPELINE_REFILL = 2, DIVIDE = 7, FP_MAC = 3, FP_DIVIDE_SQRT = 14 };
enum access { OTHER, LOAD, STORE_IMM, STORE_REG };
enum { NO_REG = -1, PC_REG = 15, SP_REG = 13 };

typedef struct {
  uint32_t cycles;
  enum access access;
  int rt, rn, rm; /* loaded/stored register, base, offset register (NO_REG if none) */
} cost_t;

static cost_t simple(uint32_t cycles) { return (cost_t){cycles, OTHER, NO_REG, NO_REG, NO_REG}; }

static cost_t memory_access(enum access kind, int rt, int rn, int rm) {
  return (cost_t){kind == STORE_IMM ? 1u : 2u, kind, rt, rn, rm};
}

static uint32_t popcount(uint32_t x) { return (uint32_t)__builtin_popcount(x); }

static cost_t cost16(uint32_t h) {
  int low = (int)(h & 7), mid = (int)((h >> 3) & 7);
  if ((h >> 11) == 0x09) return memory_access(LOAD, (int)((h >> 8) & 7), PC_REG, NO_REG); /* LDR literal */
  if ((h >> 12) == 0x5) /* load/store register offset; opB < 3 are stores */
    return memory_access(((h >> 9) & 7) < 3 ? STORE_REG : LOAD, low, mid, (int)((h >> 6) & 7));
  if ((h >> 13) == 0x3 || (h >> 12) == 0x8) /* LDR/STR(B,H) immediate offset */
    return memory_access((h >> 11) & 1 ? LOAD : STORE_IMM, low, mid, NO_REG);
  if ((h >> 12) == 0x9) /* LDR/STR SP-relative */
    return memory_access((h >> 11) & 1 ? LOAD : STORE_IMM, (int)((h >> 8) & 7), SP_REG, NO_REG);
  if ((h & 0xF600) == 0xB400) return simple(1 + popcount(h & 0x1FF)); /* PUSH (with LR) / POP (with PC) */
  if ((h >> 12) == 0xC) return simple(1 + popcount(h & 0xFF));         /* LDM/STM */
  return simple(1);
}

static cost_t cost_coprocessor(uint32_t h1, uint32_t h2) {
  uint32_t coprocessor = (h2 >> 8) & 0xF;
  if (coprocessor != 10 && coprocessor != 11) return simple(1);
  if ((h1 & 0x0E00) == 0x0C00 && (h1 & 0x01E0) != 0x0040) { /* extension register load/store */
    if ((h1 & 0x0120) == 0x0100) return simple(2);          /* VLDR/VSTR */
    return simple(1 + (h2 & 0xFF)); /* VLDM/VSTM/VPUSH/VPOP: imm8 words */
  }
  if ((h1 & 0x0F00) == 0x0E00 && !(h2 & 0x10)) { /* VFP data processing */
    uint32_t opc1 = (h1 >> 4) & 0xB;
    if (opc1 == 0x0 || opc1 == 0x1 || opc1 == 0x9 || opc1 == 0xA) return simple(FP_MAC);
    if (opc1 == 0x8) return simple(FP_DIVIDE_SQRT);
    if (opc1 == 0xB && (h1 & 0xF) == 0x1 && (h2 & 0xC0) == 0xC0) return simple(FP_DIVIDE_SQRT);
  }
  return simple(1);
}

static cost_t cost32(uint32_t h1, uint32_t h2) {
  uint32_t op1 = (h1 >> 11) & 3, op2 = (h1 >> 4) & 0x7F;
  int rn = (int)(h1 & 0xF), rt = (int)(h2 >> 12);
  int register_offset = !(h1 & 0x0080) && (h2 & 0x0FC0) == 0;
  if ((op1 == 1 || op1 == 3) && (op2 & 0x40)) return cost_coprocessor(h1, h2);
  if (op1 == 1) {
    if ((op2 & 0x64) == 0x00) return simple(1 + popcount(h2 & 0xFFFF)); /* LDM/STM/PUSH.W/POP.W */
    if ((op2 & 0x64) == 0x04) {
      if ((h1 & 0xFFF0) == 0xE8D0 && (h2 & 0xFFE0) == 0xF000) return simple(2); /* TBB/TBH */
      if ((h1 & 0x0120) == 0 && (h1 & 0x0080) == 0) return simple(2);          /* LDREX/STREX */
      return simple(3);                                                         /* LDRD/STRD */
    }
    return simple(1);
  }
  if (op1 == 3) {
    if ((op2 & 0x71) == 0x00) return memory_access(register_offset ? STORE_REG : STORE_IMM, rt, rn, register_offset ? (int)(h2 & 0xF) : NO_REG);
    if ((op2 & 0x67) == 0x01 || (op2 & 0x67) == 0x03 || (op2 & 0x67) == 0x05)
      return memory_access(LOAD, rt, rn, register_offset ? (int)(h2 & 0xF) : NO_REG);
    if ((op2 & 0x78) == 0x38) { /* long multiply, divide */
      uint32_t op = (h1 >> 4) & 7;
      if ((op == 1 || op == 3) && (h2 & 0xF0) == 0xF0) return simple(DIVIDE);
    }
  }
  return simple(1);
}

/* Loads and register-offset stores right after a load whose result they do not use for their
 * address issue in one cycle (ARM: "LDR [any] are pipelined when possible"). */
static uint32_t pipelined_cycles(const cost_t *previous, const cost_t *current) {
  int pipelined = previous->access == LOAD && (current->access == LOAD || current->access == STORE_REG) &&
                  previous->rt != current->rn && previous->rt != current->rm;
  return pipelined ? current->cycles - 1 : current->cycles;
}

/* ---- counting ---- */
typedef struct {
  uint64_t pc, fallthrough;
  uint32_t instructions, cycles;
  cost_t first, last;
} block_t;

static uint64_t begin_pc, end_pc, mark_pc;
static uint64_t marks; /* layer marks since tinyml_marker_begin */
static int out_fd = -1;
static uint64_t total_instructions, total_cycles, begin_instructions, begin_cycles;
static uint64_t previous_fallthrough;
static const block_t *previous_block;

/* The counts since tinyml_marker_begin, as two little-endian u64 at `offset` of the output file. */
static void write_counts(off_t offset) {
  uint64_t counts[2] = {total_instructions - begin_instructions, total_cycles - begin_cycles};
  if (pwrite(out_fd, counts, sizeof(counts), offset) != (ssize_t)sizeof(counts)) perror("tinyml_cycles: write");
}

static void on_block(unsigned int vcpu_index, void *userdata) {
  const block_t *block = userdata;
  (void)vcpu_index;
  if (block->pc != previous_fallthrough) {
    total_cycles += PIPELINE_REFILL; /* reached by a taken branch */
  } else if (previous_block != NULL) { /* fell through: the first instruction may pipeline */
    total_cycles -= block->first.cycles - pipelined_cycles(&previous_block->last, &block->first);
  }
  previous_fallthrough = block->fallthrough;
  previous_block = block;
  if (block->pc == begin_pc) {
    begin_instructions = total_instructions;
    begin_cycles = total_cycles;
    marks = 0;
  } else if (block->pc == end_pc) {
    write_counts(0);
  } else if (block->pc == mark_pc) {
    write_counts((off_t)(16 * ++marks));
  }
  total_instructions += block->instructions;
  total_cycles += block->cycles;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  block_t *block = calloc(1, sizeof(*block));
  size_t n = qemu_plugin_tb_n_insns(tb);
  cost_t previous = simple(0);
  (void)id;
  if (!block) abort();
  block->pc = qemu_plugin_tb_vaddr(tb);
  for (size_t i = 0; i < n; ++i) {
    const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    const uint8_t *bytes = qemu_plugin_insn_data(insn);
    size_t size = qemu_plugin_insn_size(insn);
    uint32_t h1 = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8;
    cost_t cost = size == 4 ? cost32(h1, (uint32_t)bytes[2] | (uint32_t)bytes[3] << 8) : cost16(h1);
    block->cycles += pipelined_cycles(&previous, &cost);
    if (i == 0) block->first = cost;
    previous = cost;
    block->fallthrough = qemu_plugin_insn_vaddr(insn) + size;
  }
  block->last = previous;
  block->instructions = (uint32_t)n;
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, block);
}

int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  const char *out = NULL;
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "begin=", 6) == 0) begin_pc = strtoull(argv[i] + 6, NULL, 0) & ~1ull;
    else if (strncmp(argv[i], "end=", 4) == 0) end_pc = strtoull(argv[i] + 4, NULL, 0) & ~1ull;
    else if (strncmp(argv[i], "out=", 4) == 0) out = argv[i] + 4;
    else if (strncmp(argv[i], "mark=", 5) == 0) mark_pc = strtoull(argv[i] + 5, NULL, 0) & ~1ull;
  }
  if (!begin_pc || !end_pc || !out) {
    fprintf(stderr, "tinyml_cycles: needs begin=ADDR,end=ADDR,out=FILE\n");
    return -1;
  }
  out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out_fd < 0) {
    perror(out);
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  return 0;
}
