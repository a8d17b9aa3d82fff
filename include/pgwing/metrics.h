#ifndef PGWING_METRICS_H
#define PGWING_METRICS_H

#endif
