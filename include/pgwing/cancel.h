#ifndef PGWING_CANCEL_H
#define PGWING_CANCEL_H

#endif
