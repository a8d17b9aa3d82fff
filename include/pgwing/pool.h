#ifndef PGWING_POOL_H
#define PGWING_POOL_H

#endif
