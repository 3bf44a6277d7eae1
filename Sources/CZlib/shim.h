// zlib (Debian: zlib1g-dev), for R's lazy-load data files.
#include <zlib.h>
