#include "CGatewayShims.h"
