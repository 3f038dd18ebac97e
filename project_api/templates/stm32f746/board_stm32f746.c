/* STM32F746 (DISCO-F746NG): 216 MHz from the HSI through the PLL (over-drive on, 7 flash wait
 * states, ART on), I- and D-caches on, USART1 (PA9 TX, PB7 RX: the ST-LINK virtual COM port)
 * at TINYML_BAUD_RATE, runs timed with DWT->CYCCNT. EXIT and faults reset the board, which
 * then boots and sends READY again. */
#include <stdint.h>

#include "board.h"

#ifndef TINYML_BAUD_RATE
#define TINYML_BAUD_RATE 115200u
#endif

#define REG32(address) (*(volatile uint32_t *)(address))
#define RCC_CR REG32(0x40023800u)
#define RCC_PLLCFGR REG32(0x40023804u)
#define RCC_CFGR REG32(0x40023808u)
#define RCC_AHB1ENR REG32(0x40023830u)
#define RCC_APB1ENR REG32(0x40023840u)
#define RCC_APB2ENR REG32(0x40023844u)
#define PWR_CR1 REG32(0x40007000u)
#define PWR_CSR1 REG32(0x40007004u)
#define FLASH_ACR REG32(0x40023C00u)
#define GPIOA_MODER REG32(0x40020000u)
#define GPIOA_AFRH REG32(0x40020024u)
#define GPIOB_MODER REG32(0x40020400u)
#define GPIOB_AFRL REG32(0x40020420u)
#define USART1_CR1 REG32(0x40011000u)
#define USART1_BRR REG32(0x4001100Cu)
#define USART1_ISR REG32(0x4001101Cu)
#define USART1_ICR REG32(0x40011020u)
#define USART1_RDR REG32(0x40011024u)
#define USART1_TDR REG32(0x40011028u)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define SCB_CCR REG32(0xE000ED14u)
#define SCB_CCSIDR REG32(0xE000ED80u)
#define SCB_CSSELR REG32(0xE000ED84u)
#define SCB_ICIALLU REG32(0xE000EF50u)
#define SCB_DCISW REG32(0xE000EF60u)
#define DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define DWT_LAR REG32(0xE0001FB0u)

#define APB2_HZ 108000000u
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TC (1u << 6)
#define USART_ISR_TXE (1u << 7)

const uint32_t board_counter_kind = TINYML_COUNTER_DWT;

static void barrier(void) { __asm__ volatile("dsb\nisb" ::: "memory"); }

/* HSI 16 MHz / M 8 * N 216 = 432 MHz VCO, / P 2 = 216 MHz SYSCLK, / Q 9 = 48 MHz; AHB 216,
 * APB1 54 (/4), APB2 108 (/2) MHz. */
static void clock_216mhz(void) {
  RCC_APB1ENR |= 1u << 28; /* PWREN */
  (void)RCC_APB1ENR;
  PWR_CR1 |= 3u << 14; /* voltage scale 1 */
  RCC_PLLCFGR = 8u | (216u << 6) | (0u << 16) | (9u << 24);
  RCC_CR |= 1u << 24; /* PLLON */
  while (!(RCC_CR & (1u << 25))) {
  }
  PWR_CR1 |= 1u << 16; /* over-drive */
  while (!(PWR_CSR1 & (1u << 16))) {
  }
  PWR_CR1 |= 1u << 17; /* over-drive switch */
  while (!(PWR_CSR1 & (1u << 17))) {
  }
  FLASH_ACR = 7u | (1u << 8) | (1u << 9); /* 7 wait states, prefetch, ART */
  RCC_CFGR = (RCC_CFGR & ~((7u << 10) | (7u << 13) | (0xFu << 4))) | (5u << 10) | (4u << 13);
  RCC_CFGR = (RCC_CFGR & ~3u) | 2u; /* SYSCLK = PLL */
  while (((RCC_CFGR >> 2) & 3u) != 2u) {
  }
}

static void caches_on(void) {
  barrier();
  SCB_ICIALLU = 0;
  barrier();
  SCB_CCR |= 1u << 17; /* IC */
  barrier();
  SCB_CSSELR = 0; /* level 1 data cache */
  barrier();
  uint32_t ccsidr = SCB_CCSIDR;
  uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1, ways = ((ccsidr >> 3) & 0x3FFu) + 1;
  for (uint32_t set = 0; set < sets; ++set)
    for (uint32_t way = 0; way < ways; ++way) SCB_DCISW = (set << 5) | (way << 30);
  barrier();
  SCB_CCR |= 1u << 16; /* DC */
  barrier();
}

static void usart1_on(void) {
  RCC_AHB1ENR |= (1u << 0) | (1u << 1); /* GPIOA, GPIOB */
  RCC_APB2ENR |= 1u << 4;               /* USART1 */
  (void)RCC_APB2ENR;
  GPIOA_MODER = (GPIOA_MODER & ~(3u << 18)) | (2u << 18); /* PA9 alternate function */
  GPIOA_AFRH = (GPIOA_AFRH & ~(0xFu << 4)) | (7u << 4);   /* AF7 = USART1_TX */
  GPIOB_MODER = (GPIOB_MODER & ~(3u << 14)) | (2u << 14); /* PB7 alternate function */
  GPIOB_AFRL = (GPIOB_AFRL & ~(0xFu << 28)) | (7u << 28); /* AF7 = USART1_RX */
  USART1_BRR = (APB2_HZ + TINYML_BAUD_RATE / 2) / TINYML_BAUD_RATE;
  USART1_CR1 = (1u << 0) | (1u << 2) | (1u << 3); /* UE, RE, TE */
}

void board_init(void) {
  clock_216mhz();
  caches_on();
  usart1_on();
  DEMCR |= 1u << 24; /* TRCENA */
  DWT_LAR = 0xC5ACCE55u;
  DWT_CTRL |= 1u; /* CYCCNTENA */
}

uint8_t board_read_byte(void) {
  while (!(USART1_ISR & USART_ISR_RXNE)) {
    if (USART1_ISR & USART_ISR_ORE) USART1_ICR = USART_ISR_ORE;
  }
  return (uint8_t)USART1_RDR;
}

void board_write(const uint8_t *data, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    while (!(USART1_ISR & USART_ISR_TXE)) {
    }
    USART1_TDR = data[i];
  }
}

void board_counter_start(void) { DWT_CYCCNT = 0; }

/* DWT->CYCCNT is 32 bits: runs longer than 2^32 cycles (19.9 s at 216 MHz) wrap. */
tinyml_counts_t board_counter_stop(void) {
  tinyml_counts_t counts = {DWT_CYCCNT, 0, 1};
  return counts;
}

static uint32_t layer_cycles[TINYML_MAX_LAYER_MARKS];

void board_layer_mark(uint32_t mark) { layer_cycles[mark] = DWT_CYCCNT; }

tinyml_counts_t board_layer_counts(uint32_t mark) {
  tinyml_counts_t counts = {layer_cycles[mark], 0, 1};
  return counts;
}

void board_exit(int code) {
  (void)code;
  while (!(USART1_ISR & USART_ISR_TC)) {
  }
  SCB_AIRCR = 0x05FA0004u; /* SYSRESETREQ */
  for (;;) {
  }
}
