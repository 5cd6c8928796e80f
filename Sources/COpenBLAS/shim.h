// cblas.h lives only under OpenBLAS's own include folder (found through pkg-config);
// it also declares openblas_set_num_threads / openblas_get_num_threads.
#include <cblas.h>
