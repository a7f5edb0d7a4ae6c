#ifndef SLUICE_CFUZZDRIVER_H
#define SLUICE_CFUZZDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for a program with its own main (SwiftPM names an
/// executable's entry point itself, so libFuzzer's main cannot be used):
/// https://llvm.org/docs/LibFuzzer.html#using-libfuzzer-as-a-library
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
