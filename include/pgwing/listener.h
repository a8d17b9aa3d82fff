#ifndef PGWING_LISTENER_H
#define PGWING_LISTENER_H

#endif
