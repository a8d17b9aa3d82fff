#ifndef PGWING_SERVER_H
#define PGWING_SERVER_H

#endif
