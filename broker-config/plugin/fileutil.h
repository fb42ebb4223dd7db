#ifndef HUB_AUTH_FILEUTIL_H
#define HUB_AUTH_FILEUTIL_H

#include <stdbool.h>

/* fsync of the folder that holds path: makes a rename into it durable. */
bool fsync_folder_of(const char *path);

#endif
