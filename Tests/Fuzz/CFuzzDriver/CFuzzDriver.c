// The declaration is all: libFuzzer, linked by -sanitize=fuzzer, defines it.
#include "CFuzzDriver.h"
