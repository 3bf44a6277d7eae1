// OpenBLAS's CBLAS interface (Debian: libopenblas-dev puts cblas.h on the include path).
#include <cblas.h>
// OpenBLAS extensions used to size and report the thread pool.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
