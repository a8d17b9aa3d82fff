#ifndef PGWING_CLIENT_H
#define PGWING_CLIENT_H

#endif
