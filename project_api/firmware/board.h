/* What each board (template) implements for the shared firmware runtime. */
#ifndef TINYML_BOARD_H_
#define TINYML_BOARD_H_

#include <stdint.h>

#include "tinyml_firmware.h"

/* Set up the channel (and on a real board clocks and caches); called once before serving. */
void board_init(void);

/* Which counter board_counter_stop reads (TINYML_COUNTER_*). */
extern const uint32_t board_counter_kind;

/* Block until one byte arrives on the channel. */
uint8_t board_read_byte(void);

/* Send `n` bytes on the channel. */
void board_write(const uint8_t *data, uint32_t n);

/* Start measuring; board_counter_stop returns what was measured since. */
void board_counter_start(void);
tinyml_counts_t board_counter_stop(void);

/* At layer mark `mark` (< TINYML_MAX_LAYER_MARKS) of a measured run: note the counter, if the board
 * reads it itself. board_layer_counts returns what it measured from board_counter_start to that mark. */
void board_layer_mark(uint32_t mark);
tinyml_counts_t board_layer_counts(uint32_t mark);

/* End the firmware with an exit code (semihosting on QEMU, exit() on the host). */
void board_exit(int code) __attribute__((noreturn));

#endif /* TINYML_BOARD_H_ */
